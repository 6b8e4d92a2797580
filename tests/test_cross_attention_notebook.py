"""notebooks/03_kernels.ipynb runs top to bottom with tiny settings (benchmark on CPU, attention pattern)."""
from __future__ import annotations


def test_kernels_notebook_runs(execute_notebook, tmp_path):
    execute_notebook("03_kernels.ipynb", BATCH=2, HEADS=2, HEAD_DIM=32, LENGTHS=[64], DTYPE="float32",
                     PROVIDERS=["triton", "sdpa_mask", "sdpa_flash", "reference"], INTERPRET_MAX_LEN=64,
                     OUT_DIR=str(tmp_path / "results"), PATTERN_SECONDS=0.8)
    assert (tmp_path / "results" / "cross_attention.csv").stat().st_size > 0
    assert (tmp_path / "results" / "cross_attention.png").stat().st_size > 0
    rows = (tmp_path / "results" / "cross_attention.csv").read_text().splitlines()
    assert any(r.split(",")[1:4] == ["triton", "fwd+bwd", "window"] and r.endswith(",ok") for r in rows)
