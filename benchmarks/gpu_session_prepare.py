"""What the GPU session needs and the GPU image lacks, made here: ``benchmarks/gpu_session.sh --prepare`` runs this.

1. ``.gpu_session/``: the built-in corpus of the ``pretrain`` stage (synthesized, preprocessed, MFCC k-means
   labels; only the preprocessed part is kept, as only it travels) and ``pretrain_data.json`` (manifest, labels
   and media root relative to the folder; the stage re-roots the manifest where it lands).
2. ``.whl/``: wheels of the media packages the ``pretrain`` stage reads with (PyAV, soundfile and soundfile's
   cffi and pycparser) for the GPU image's Python (3.12, manylinux x86-64), the versions installed here.
3. The size of what a device call would send: the working tree (tracked and untracked files git does not ignore)
   plus both folders, against the device tool's 64 MiB; exit status 1 if it is over.

Then, with the device tool: ``run(command="benchmarks/gpu_session.sh", carry=[".gpu_session", ".whl"],
timeout_s=570)``. The ``separate`` stage also needs decord and mediapipe (mediapipe 0.10.21 wants numpy<2, and the
image has numpy 2.5), more than fits beside them: it is skipped there.

    python benchmarks/gpu_session_prepare.py [--corpus .gpu_session] [--wheels .whl] [--clips 8] [--no-wheels]

The corpus is made from a file, not a here-document: the synthesis workers are spawned and re-import their
parent's main module, which a script read from stdin has none of.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

from avspeech.errors import InputError
from avspeech.io.atomic import atomic_write_json
from avspeech.synth.splits import prepare_default_data

REPO = Path(__file__).resolve().parents[1]
CARRY_LIMIT = 64 * 2**20  # what one device call may send: tree + carried paths
GPU_PYTHON = "3.12"  # the GPU image's python3 (/work/.library/device/KINDS.md)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def prepare_corpus(folder: Path, clips: int, clusters: int) -> None:
    manifest, labels = prepare_default_data(folder / "data", clips=clips, clusters=clusters)
    media_root = Path(manifest.read_text().splitlines()[0])  # the manifest's first line: its (absolute) root
    atomic_write_json(folder / "pretrain_data.json",
                      {"manifest": str(manifest.relative_to(folder)), "labels": str(labels.relative_to(folder)),
                       "root": str(media_root.resolve().relative_to(folder.resolve()))})
    shutil.rmtree(folder / "data" / "synth", ignore_errors=True)  # the raw clips: pretrain reads data/prep alone
    print(f"corpus: {manifest} and {labels}")


def download_wheels(folder: Path) -> None:
    """The media wheels for the GPU image; raises CalledProcessError (pip's own message printed) if pip fails."""
    wanted = [f"av=={importlib.metadata.version('av')}", f"soundfile=={importlib.metadata.version('soundfile')}",
              "cffi", "pycparser"]
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.whl"):  # one version of each: two stop the install there
        old.unlink()
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", GPU_PYTHON, "--implementation", "cp", *platforms, "-d", str(folder), *wanted],
                   check=True)
    print(f"wheels: {', '.join(sorted(p.name for p in folder.glob('*.whl')))}")


def tree_bytes() -> int:
    """Bytes of what a device call sends besides carried paths: tracked and untracked-not-ignored files."""
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True).stdout
    files = (REPO / f for f in out.decode().split("\0") if f)
    return sum(f.stat().st_size for f in files if f.is_file())


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=REPO / ".gpu_session", help="corpus folder (default .gpu_session)")
    ap.add_argument("--wheels", type=Path, default=REPO / ".whl", help="wheel folder (default .whl)")
    ap.add_argument("--clips", type=int, default=8, help="synthetic clips (default 8, as the stage's --clips)")
    ap.add_argument("--clusters", type=int, default=25, help="k-means clusters of the labels (default 25)")
    ap.add_argument("--no-wheels", action="store_true", help="make the corpus only")
    args = ap.parse_args(argv)
    try:
        prepare_corpus(args.corpus, args.clips, args.clusters)
    except (InputError, OSError) as e:
        print(f"gpu_session_prepare: cannot make the corpus in {args.corpus}: {e}", file=sys.stderr)
        return 1
    if not args.no_wheels:
        try:
            download_wheels(args.wheels)
        except subprocess.CalledProcessError:
            print(f"gpu_session_prepare: pip could not download the wheels into {args.wheels} (no network?); the "
                  "pretrain stage will be skipped on the GPU image without them", file=sys.stderr)
            return 1
    sizes = {"tree": tree_bytes(), args.corpus.name: folder_bytes(args.corpus)}
    if not args.no_wheels:
        sizes[args.wheels.name] = folder_bytes(args.wheels)
    total = sum(sizes.values())
    print("a device call sends " + " + ".join(f"{k} {v / 2**20:.1f}" for k, v in sizes.items())
          + f" = {total / 2**20:.1f} MiB (limit {CARRY_LIMIT / 2**20:.0f})")
    if total > CARRY_LIMIT:
        print("gpu_session_prepare: over the device tool's limit: carry less (e.g. --no-wheels: the pretrain stage "
              "is then skipped there)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
