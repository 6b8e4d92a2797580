"""The batch runner records failures and keeps going, with one process or several."""
import os

import pytest

from avspeech.batch import report_failures, run_batch, write_failures
from avspeech.errors import InputError


def _work(x):
    if x == 3:
        raise InputError("three is not allowed", f"item{x}")
    if x == 5:
        raise ZeroDivisionError("division by zero")
    if x == 7:
        os._exit(1)  # a worker that dies
    return x * x


@pytest.mark.parametrize("workers", [1, 2])
def test_failures_are_collected_and_batch_continues(workers, tmp_path):
    items = [0, 1, 3, 4, 5] + ([7] if workers > 1 else [])
    results, failures = run_batch(items, _work, workers=workers)
    assert sorted(results) == [0, 1, 16]
    causes = {f.item: f.cause for f in failures}
    assert "three is not allowed" in causes["3"] and "ZeroDivisionError" in causes["5"]
    if workers > 1:
        assert any("worker process died" in c for c in causes.values())
    write_failures(tmp_path / "failures.tsv", failures)
    lines = (tmp_path / "failures.tsv").read_text().splitlines()
    assert lines[0] == "file\tcause" and len(lines) == 1 + len(failures)
    assert report_failures(failures, len(items)).startswith(f"{len(items) - len(failures)}/{len(items)}")
