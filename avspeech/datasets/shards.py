"""``avspeech prepare`` beyond one machine: a SLURM job array (``--shard i/N``), submitit, and the merge check.

Each shard job preprocesses its share of the videos (chosen by a hash of the clip id,
:func:`avspeech.preprocess.discover.shard`) into the shared output folder and writes
``manifest.shard-i-of-N.tsv`` (tracks of its clips with audio), ``manifest_video_only.shard-i-of-N.tsv`` and
``failures.shard-i-of-N.tsv``. :func:`check_shards` then verifies from those files that all N shards finished and
that every clip of the dataset is in exactly one of them (as done or as failed); the last run without ``--shard``
writes the manifests.
"""
from __future__ import annotations

import shlex
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from avspeech.data import layout
from avspeech.preprocess.discover import ClipInput


@dataclass
class ShardCheck:
    shards: int
    missing_files: list[str] = field(default_factory=list)  # shard files not written (job not finished)
    absent: list[str] = field(default_factory=list)  # clips in no shard
    repeated: dict[str, list[int]] = field(default_factory=dict)  # clip -> shards it appears in (more than one)
    done: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing_files or self.absent or self.repeated)

    def summary(self) -> str:
        if self.ok:
            return f"shards: all {self.shards} finished, every clip is in exactly one ({self.done} clips)"
        lines = [f"shards: {len(self.missing_files)} files missing, {len(self.absent)} clips in no shard, "
                 f"{len(self.repeated)} in more than one"]
        lines += [f"  MISSING {p}" for p in self.missing_files]
        lines += [f"  ABSENT {c}" for c in self.absent[:20]] + (["  ..."] if len(self.absent) > 20 else [])
        lines += [f"  REPEATED {c} in shards {s}" for c, s in list(self.repeated.items())[:20]]
        return "\n".join(lines)


def _clips_in(path: Path, source_to_clip: dict[str, str]) -> set[str]:
    """Clip ids named by a shard's manifest (track ids) or failure list (source files)."""
    if path.name.startswith("failures"):
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
        return {source_to_clip.get(ln.split("\t")[0], ln.split("\t")[0]) for ln in lines if ln.strip()}
    return {layout.clip_of(u.id) for u in layout.read_manifest(path)}


def check_shards(out: str | Path, clips: Sequence[ClipInput], n: int) -> ShardCheck:
    """Compare the shard files in ``out`` with the dataset's ``clips`` (see the module docstring)."""
    out = Path(out)
    check = ShardCheck(n)
    source_to_clip = {c.path: c.clip_id for c in clips}
    seen: dict[str, list[int]] = defaultdict(list)
    for i in range(n):
        suffix = f".shard-{i}-of-{n}"
        files = [*layout.manifest_paths(out, suffix), layout.failures_path(out, suffix)]
        absent = [str(p) for p in files if not p.is_file()]
        if absent:
            check.missing_files += absent
            continue
        found: set[str] = set()
        for p in files:
            found |= _clips_in(p, source_to_clip)
        for c in found:
            seen[c].append(i)
    wanted = {c.clip_id for c in clips}
    if not check.missing_files:
        check.absent = sorted(wanted - set(seen))
    check.repeated = {c: s for c, s in sorted(seen.items()) if len(s) > 1 and c in wanted}
    check.done = len(wanted & set(seen))
    return check


def sbatch_script(argv: Sequence[str], shards: int, out: str | Path, cpus: int = 4, mem: str = "16G",
                  hours: int = 24) -> str:
    """A SLURM job-array script running ``avspeech <argv> --shard $SLURM_ARRAY_TASK_ID/N``, one task per shard,
    and (as a comment) the merge run to submit after it."""
    cmd = " ".join(shlex.quote(a) for a in ["avspeech", *argv])
    log = Path(out) / "slurm"
    return f"""#!/bin/bash
# avspeech prepare as a SLURM job array: one task per shard, all writing into the same output folder.
#   mkdir -p {shlex.quote(str(log))} && JOB=$(sbatch --parsable this_script.sbatch)
# then, once every task has finished, check that each clip is in exactly one shard and write the manifests:
#   sbatch --dependency=afterok:$JOB --cpus-per-task={cpus} --wrap "{cmd} --check-shards {shards}"
#SBATCH --job-name=avspeech-prepare
#SBATCH --array=0-{shards - 1}
#SBATCH --cpus-per-task={cpus}
#SBATCH --mem={mem}
#SBATCH --time={hours}:00:00
#SBATCH --output={log}/%A_%a.log
set -euo pipefail
{cmd} --workers {cpus} --shard "${{SLURM_ARRAY_TASK_ID}}/{shards}"
"""


def run_submitit(job: Callable[[int, int], object], shards: int, folder: str | Path, **parameters) -> list:
    """Run ``job(i, shards)`` for every shard through submitit (SLURM when available, else local processes) and
    wait for all; raises ImportError naming the package when submitit is not installed."""
    try:
        import submitit
    except ImportError as e:
        raise ImportError("--submitit needs the submitit package (pip install submitit); or run the SLURM "
                          "array script of --sbatch") from e
    executor = submitit.AutoExecutor(folder=str(folder))
    executor.update_parameters(**parameters)
    jobs = executor.map_array(job, list(range(shards)), [shards] * shards)
    return [j.result() for j in jobs]
