"""Where the mouth lands in the ROI under this package's geometry and AV-HuBERT's, on real faces.

The two real photographs that ship inside installed packages (matplotlib's Grace Hopper, scikit-image's
astronaut) and similarity-perturbed copies of them (rotation +-15 degrees, scale 0.7 and 1.4, a shift) go through
MediaPipe face detection and FaceMesh as ``avspeech preprocess`` runs them; for each landmark set, both
geometries' ROI maps (``roi_transforms(..., geometry=)``) give: the mouth centre's distance from the ROI centre
(px), the mouth width (corner to corner, px), the outer eye-corner distance in the aligned frame (px; next to
the mean face's own), and the time per ROI (the maps of a 12-frame window and its 12 ROIs, divided by 12; the two
geometries alternated, 30 times each, median; the ratio is what means something). A pose-invariant geometry gives
the same mouth width on every copy of a photo. Writes ``benchmarks/results/cpu/roi_geometry.csv`` and ``.png``
(each photo's ROIs side by side, and the measures).

    python benchmarks/bench_roi_geometry.py
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from avspeech.io.atomic import atomic_write_csv  # noqa: E402
from avspeech.preprocess.align import (AVHUBERT_MEAN_FACE, AVHUBERT_MOUTH_POINTS, LIP_POINTS, MEAN_FACE,  # noqa: E402
                                       apply, crop_rois, roi_transforms)
from avspeech.preprocess.config import ROI_GEOMETRIES as GEOMETRIES  # noqa: E402
from avspeech.preprocess.detect import FaceDetector, FaceMeshPool  # noqa: E402
from preprocess_helpers import load_photo  # noqa: E402

PERTURB = {"original": (0.0, 1.0, 0, 0), "rot+15": (15.0, 1.0, 0, 0), "rot-15": (-15.0, 1.0, 0, 0),
           "scale0.7": (0.0, 0.7, 0, 0), "scale1.4": (0.0, 1.4, 0, 0), "shift": (0.0, 1.0, 40, -25)}
MOUTH = {"avspeech": LIP_POINTS, "avhubert": AVHUBERT_MOUTH_POINTS}
# outer eye corners of each mean face (dlib 36 and 45 in 20words_mean_face.npy), px in the 256x256 frame
MEAN_EYES = {"avspeech": float(np.linalg.norm(MEAN_FACE[3] - MEAN_FACE[0])),
             "avhubert": float(np.linalg.norm(AVHUBERT_MEAN_FACE[3] - AVHUBERT_MEAN_FACE[0]))}
REPEATS = 30


def perturbed(img: np.ndarray, angle: float, scale: float, dx: int, dy: int) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def main() -> None:
    out = Path(__file__).parent / "results" / "cpu"
    out.mkdir(parents=True, exist_ok=True)
    det, pool = FaceDetector(), FaceMeshPool()
    rows, shown = [], {}
    for photo in ("hopper", "astronaut"):
        base = load_photo(photo)
        for name, (angle, scale, dx, dy) in PERTURB.items():
            img = perturbed(base, angle, scale, dx, dy)
            boxes, _ = det(img)
            lm = pool.acquire()(img, boxes[0]) if len(boxes) else None
            if lm is None:
                print(f"{photo} {name}: no face found, skipped")
                continue
            seq = np.stack([lm] * 12)  # a still face: 12 frames, so both smoothers see a full window
            clip = np.broadcast_to(img, seq.shape[:1] + img.shape)  # the photo as each frame
            times = {geo: [] for geo in GEOMETRIES}
            for _ in range(REPEATS):  # the geometries alternate, so load on the machine hits both alike
                for geo in GEOMETRIES:
                    t0 = time.perf_counter()
                    tf = roi_transforms(seq, 12, 96, geometry=geo)
                    crop_rois(clip, tf, 96)
                    times[geo].append((time.perf_counter() - t0) * 1e3 / len(seq))
            for geo in GEOMETRIES:
                tf = roi_transforms(seq, 12, 96, geometry=geo)
                roi = crop_rois(img[None], tf[:1], 96)[0]
                m = tf[0]
                mouth = apply(m, lm[MOUTH[geo]]).mean(axis=0)
                width = float(np.linalg.norm(apply(m, lm[291]) - apply(m, lm[61])))
                eyes = float(np.linalg.norm((lm[263] - lm[33]) @ m[:, :2].T))
                rows.append({"photo": photo, "perturbation": name, "geometry": geo,
                             "mouth_offset_px": round(float(np.linalg.norm(mouth - 48)), 3),
                             "mouth_width_px": round(width, 2), "eye_distance_px": round(eyes, 2),
                             "mean_face_eye_distance_px": round(MEAN_EYES[geo], 2),
                             "ms_per_roi": round(statistics.median(times[geo]), 4)})
                if name == "original":
                    shown[(photo, geo)] = roi
    for geo in GEOMETRIES:
        r = [x for x in rows if x["geometry"] == geo]
        for photo in ("hopper", "astronaut"):
            w = [x["mouth_width_px"] for x in r if x["photo"] == photo]
            print(f"{geo:9s} {photo:9s} mouth width {statistics.mean(w):.1f} px (spread {max(w) - min(w):.2f}), "
                  f"max offset {max(x['mouth_offset_px'] for x in r if x['photo'] == photo):.2f} px")
    for geo in GEOMETRIES:
        e = [x["eye_distance_px"] for x in rows if x["geometry"] == geo]
        print(f"{geo:9s} outer eye corners {min(e):.2f}..{max(e):.2f} px apart (mean face: {MEAN_EYES[geo]:.2f})")
    t = {g: statistics.median(x["ms_per_roi"] for x in rows if x["geometry"] == g) for g in GEOMETRIES}
    ratio = t["avhubert"] / t["avspeech"]
    print(f"time per ROI: avspeech {t['avspeech']:.3f} ms, avhubert {t['avhubert']:.3f} ms, ratio {ratio:.3f}")
    atomic_write_csv(out / "roi_geometry.csv", rows)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 6, figsize=(16, 3.2), gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.6, 1.6]})
    for i, (photo, geo) in enumerate([(p, g) for p in ("hopper", "astronaut") for g in GEOMETRIES]):
        ax = axes[i]
        if (photo, geo) in shown:
            ax.imshow(shown[(photo, geo)], cmap="gray", vmin=0, vmax=255)
        ax.axhline(47.5, color="r", lw=0.5)
        ax.axvline(47.5, color="r", lw=0.5)
        ax.set_title(f"{photo}\n{geo}", fontsize=9)
        ax.axis("off")
    for ax, key, label in ((axes[4], "mouth_width_px", "mouth width in ROI (px)"),
                           (axes[5], "mouth_offset_px", "mouth centre offset (px)")):
        for j, geo in enumerate(GEOMETRIES):
            for k, photo in enumerate(("hopper", "astronaut")):
                v = [x[key] for x in rows if x["geometry"] == geo and x["photo"] == photo]
                ax.scatter(np.full(len(v), 2 * j + k) + np.linspace(-0.2, 0.2, len(v)), v, s=14,
                           label=f"{geo}, {photo}")
        ax.set_xticks(range(4), [f"{g}\n{p}" for g in GEOMETRIES for p in ("hopper", "astro.")], fontsize=7)
        ax.set_ylabel(label, fontsize=8)
    fig.suptitle(f"Mouth ROIs, this package's geometry vs AV-HuBERT's (6 poses per photo); time ratio "
                 f"avhubert/avspeech {ratio:.2f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "roi_geometry.png", dpi=110)
    print(f"wrote {out / 'roi_geometry.csv'} and .png")


if __name__ == "__main__":
    main()
