"""Cluster targets for masked prediction: features per frame -> k-means (scikit-learn MiniBatchKMeans) -> one
label line per utterance at 25 Hz.

Iteration 1 clusters 39-dim MFCCs (:func:`avspeech.features.mfcc_39`); iteration n clusters layer-L features of
the previous iteration's checkpoint. :func:`purity` measures clusters against reference phone labels (for a
synthetic corpus, :func:`avspeech.synth.splits.synthetic_phones`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from avspeech.data.dataset import read_utterance_audio
from avspeech.data.layout import Utterance
from avspeech.errors import InputError
from avspeech.features import mfcc_39

log = logging.getLogger(__name__)


def mfcc_features(utts: Sequence[Utterance], failures: list | None = None) -> list[np.ndarray | None]:
    """(T, 39) per utterance; None for an utterance without audio, or whose audio cannot be read or is shorter
    than the manifest says (:func:`~avspeech.data.dataset.read_utterance_audio`; then a
    :class:`~avspeech.batch.Failure` is appended to ``failures`` if given, else the error is raised)."""
    from avspeech.batch import Failure

    out = []
    for u in tqdm(utts, desc="mfcc", unit="utt", dynamic_ncols=True):
        try:
            out.append(None if u.audio is None else mfcc_39(read_utterance_audio(u), u.frames).numpy())
        except InputError as e:
            if failures is None:
                raise
            failures.append(Failure(u.id, str(e)))
            out.append(None)
    return out


@torch.no_grad()
def encoder_features(checkpoint: str | Path, manifest: str | Path, layer: int, device: str = "cpu",
                     batch_frames: int = 2000) -> list[np.ndarray]:
    """(T, D) layer-``layer`` features (audio-visual, no masking) per utterance of ``manifest``."""
    from avspeech.data.dataset import AVDataset, BucketBatchSampler, collate
    from avspeech.model.checkpoint import load_encoder

    encoder = load_encoder(checkpoint).to(device).eval()
    if not 1 <= layer <= encoder.cfg.layers:
        raise ValueError(f"layer must be in 1..{encoder.cfg.layers}, got {layer}")
    ds = AVDataset(manifest, features=encoder.cfg.audio_features)
    out: list[np.ndarray | None] = [None] * len(ds)
    sampler = BucketBatchSampler([u.frames for u in ds.utterances], max(batch_frames, max(ds.lengths())),
                                 shuffle=False)
    for idx in tqdm(list(sampler), desc=f"layer {layer} features", unit="batch", dynamic_ncols=True):
        batch = collate([ds[i] for i in idx])
        feats = encoder(batch["lips"].to(device), batch["audio"].to(device), batch["lengths"].to(device),
                        has_audio=batch["has_audio"].to(device), output_layer=layer)
        for j, i in enumerate(idx):
            out[i] = feats[j, : int(batch["lengths"][j])].float().cpu().numpy()
    return out  # type: ignore[return-value]


def no_usable_utterance(utts: Sequence[Utterance], failures: Sequence = ()) -> str:
    """The cause to report when no utterance of a manifest gave features to cluster (``failures``: those whose
    audio failed, as :func:`mfcc_features` collects them)."""
    if not utts:
        return "no usable utterance: the manifest lists none"
    n, bad = len(utts), len(failures)
    if bad == n:
        why = ("its one utterance" if n == 1 else f"all {n} utterances") + " failed (listed above)"
    else:
        without = sum(u.audio is None for u in utts)
        counts = ((bad, "failed (listed above)"), (without, "have no audio"), (n - bad - without, "have no frames"))
        why = ", ".join(f"{c} {what}" for c, what in counts if c > 0) + f" (of {n} utterances)"
    audio = [u.audio for u in utts if u.audio is not None]
    if audio and not any(a.exists() for a in audio):
        why += "; none of their audio files exists (is the root folder on the manifest's first line right?)"
    return f"no usable utterance: {why}"


def fit_kmeans(features: Sequence[np.ndarray | None], k: int, fraction: float = 1.0, seed: int = 0,
               max_frames: int = 1_000_000):
    """MiniBatchKMeans on a sampled ``fraction`` of all frames (at most ``max_frames``); an
    :class:`InputError` when there are fewer frames than clusters (none at all: no usable utterance)."""
    from sklearn.cluster import MiniBatchKMeans

    usable = [f for f in features if f is not None and len(f)]
    if not usable:
        raise InputError(f"no usable utterance: none of the {len(features)} has features to cluster")
    x = np.concatenate(usable)
    rng = np.random.default_rng(seed)
    n = min(max(int(len(x) * fraction), k), len(x), max_frames)
    sample = x[rng.choice(len(x), n, replace=False)] if n < len(x) else x
    if len(sample) < k:
        raise InputError(f"only {len(sample)} frames to cluster into {k} clusters; use fewer clusters")
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=min(10000, len(sample)), n_init=3,
                         max_iter=100)
    km.fit(sample)
    return km


def assign(km, features: Sequence[np.ndarray | None], frames: Sequence[int]) -> list[np.ndarray]:
    """Cluster ids per frame; -1 for frames without features (no audio)."""
    out = []
    for f, t in zip(features, frames):
        lab = np.full(t, -1, dtype=np.int64)
        if f is not None and len(f):
            pred = km.predict(f.astype(np.float32))
            lab[: min(t, len(pred))] = pred[:t]
        out.append(lab)
    return out


def purity(clusters: Sequence[np.ndarray], phones: Sequence[np.ndarray]) -> dict[str, float]:
    """HuBERT's measures of cluster quality (Hsu et al. 2021, sec. "Clustering quality"), over frames with a
    cluster id: phone purity E_z[max_y p(y|z)] (how much each cluster is one phone), cluster purity
    E_y[max_z p(z|y)] (how much each phone falls in one cluster) and phone-normalised mutual information
    I(y; z) / H(y)."""
    from sklearn.metrics import mutual_info_score
    from sklearn.metrics.cluster import contingency_matrix

    c = np.concatenate([np.asarray(x) for x in clusters])
    p = np.concatenate([np.asarray(x) for x in phones])
    keep = c >= 0
    c, p = c[keep], p[keep].astype(str)
    m = contingency_matrix(p, c)  # (phones, clusters)
    n = m.sum()
    probs = m.sum(1) / n
    h_phone = float(-(probs * np.log(probs)).sum())
    return {"phone_purity": float(m.max(0).sum() / n), "cluster_purity": float(m.max(1).sum() / n),
            "pnmi": float(mutual_info_score(p, c) / h_phone) if h_phone > 0 else float("nan"),
            "frames": int(n), "clusters_used": int((m.sum(0) > 0).sum()), "phones": int(len(probs))}


def layer_default(num_layers: int) -> int:
    """A middle-to-upper layer, as HuBERT/AV-HuBERT pick for the next iteration's targets."""
    return max(1, (2 * num_layers + 2) // 3)
