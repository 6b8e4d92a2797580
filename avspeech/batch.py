"""Run one function over many items: progress bar, worker processes, failures collected, never aborted.

Every batch command (synth, preprocess, cluster, ...) goes through :func:`run_batch`, so they all behave the
same way: a bad item is recorded with its cause and the batch continues; the caller prints the summary and exits
non-zero when anything failed.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from tqdm.auto import tqdm

from avspeech.errors import InputError
from avspeech.io.atomic import atomic_write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    item: str
    cause: str


def _call(fn: Callable[[Any], Any], item: Any, name: str) -> tuple[Any, Failure | None]:
    try:
        return fn(item), None
    except InputError as e:
        return None, Failure(name, e.cause if e.path in (None, name) else str(e))
    except Exception as e:  # noqa: BLE001 - a batch reports every failure and keeps going
        log.debug("failure on %s\n%s", name, traceback.format_exc())
        return None, Failure(name, f"{type(e).__name__}: {e}")


def run_batch(
    items: Sequence[Any],
    fn: Callable[[Any], Any],
    *,
    workers: int = 1,
    desc: str = "",
    unit: str = "item",
    label: Callable[[Any], str] = str,
    initializer: Callable[..., None] | None = None,
    initargs: Iterable[Any] = (),
) -> tuple[list[Any], list[Failure]]:
    """Apply ``fn`` to every item; return (results of the items that succeeded, failures).

    ``label(item)`` names an item in failures (default ``str``). ``fn`` must be picklable when ``workers > 1``
    (a module-level function or a ``functools.partial`` of one).
    Worker processes are started with ``spawn`` so that no thread state (OpenMP, MediaPipe) is inherited; at
    most ``2 * workers`` items are queued for them at a time (the rest wait here, not in the pool's queue).
    """
    results: list[Any] = []
    failures: list[Failure] = []
    bar = tqdm(total=len(items), desc=desc, unit=unit, dynamic_ncols=True)
    try:
        if workers <= 1:
            if initializer is not None:
                initializer(*initargs)
            for item in items:
                res, fail = _call(fn, item, label(item))
                (failures.append(fail) if fail else results.append(res))
                bar.update(1)
        else:
            ctx = mp.get_context("spawn")

            def pool(n: int) -> ProcessPoolExecutor:
                return ProcessPoolExecutor(n, mp_context=ctx, initializer=initializer, initargs=tuple(initargs))

            # a worker that dies (crash, out of memory) breaks the whole pool and every item in flight; those
            # items are retried one at a time, each in a fresh process, so only the culprit is reported
            casualties: list[Any] = []
            with pool(workers) as ex:
                todo = iter(items)
                futures: dict = {}
                while True:
                    for item in todo:  # top the bounded queue up
                        try:
                            futures[ex.submit(_call, fn, item, label(item))] = item
                        except BrokenProcessPool:  # the pool died: what is left runs one at a time below
                            casualties.append(item)
                            continue
                        if len(futures) >= 2 * workers:
                            break
                    if not futures:
                        break
                    finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        item = futures.pop(fut)
                        try:
                            res, fail = fut.result()
                        except BrokenProcessPool:
                            casualties.append(item)
                            continue
                        (failures.append(fail) if fail else results.append(res))
                        bar.update(1)
            for item in casualties:
                with pool(1) as ex:
                    try:
                        res, fail = ex.submit(_call, fn, item, label(item)).result()
                    except BrokenProcessPool as e:
                        res, fail = None, Failure(label(item), f"worker process died ({e})")
                (failures.append(fail) if fail else results.append(res))
                bar.update(1)
    finally:
        bar.close()
    return results, failures


def write_failures(path: str | Path, failures: Sequence[Failure]) -> None:
    """Write ``file<TAB>cause`` lines (header first), atomically; an empty batch writes only the header."""
    lines = ["file\tcause"] + [f"{f.item}\t{f.cause.replace(chr(9), ' ').replace(chr(10), ' ')}" for f in failures]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_failures(path: str | Path) -> list[Failure]:
    """The failures :func:`write_failures` wrote to ``path`` (none when there is no such file)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [Failure(*line.split("\t", 1)) for line in path.read_text().splitlines()[1:] if "\t" in line]


def report_failures(failures: Sequence[Failure], total: int, what: str = "items") -> str:
    """A human summary of a batch: counts, then one line per failure."""
    ok = total - len(failures)
    lines = [f"{ok}/{total} {what} done, {len(failures)} failed"]
    lines += [f"  FAILED {f.item}: {f.cause}" for f in failures]
    return "\n".join(lines)
