"""The compiled (non-interpreted) path, built as launched: the kernels for Hopper (sm_90a) without a GPU.

The interpreter runs the kernels' Python, so it cannot catch errors that only the Triton compiler sees (types
across branches, constexpr misuse, layouts) nor register spills. A subprocess without TRITON_INTERPRET runs
``benchmarks/static_cross_attention.py --sample``: the launchers run unchanged on CPU tensors under a stand-in
driver for sm_90a, Triton's JIT records each launch's specialization (``tt.divisibility`` on the pointers and
strides, as a real launch marks them; a build without them is another program), and each is compiled with
Triton's ptxas. The targeted case (bf16, Dh 64, window and bias, the shipped tiles), deterministic and atomic-dq
backward: every kernel must build with 0 spills, within the shared memory of one block and, where it multiplies
matrices, on wgmma. The full table (both targets, every configuration the dispatcher can pick) is the script's
job: benchmarks/results/static/.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_kernels_build_as_launched_for_hopper(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "static_cross_attention.py"), "--sample",
                        "--targets", "90", "--out", str(tmp_path)], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "cross_attention_static.csv")))
    kernels = {(row["kernel"], row["deterministic"]) for row in rows}
    passes = ("fwd_kernel", "bwd_delta_kernel", "bwd_dkdv_kernel")
    # the atomic-dq backward (deterministic False) has no dq pass
    assert kernels == {(k, d) for k in passes for d in ("True", "False")} | {("bwd_dq_kernel", "True")}, kernels
    for row in rows:
        assert row["target"] == "sm_90a"
        assert row["ok"] == "True", row
        assert int(row["spill_stores"]) == 0 and int(row["spill_loads"]) == 0, row
        assert int(row["smem_bytes"]) <= 232448, row
        # the launch's specialization: pointers and 16-divisible strides carry tt.divisibility
        assert int(row["divisible_args"]) >= 12, row
        if row["kernel"] != "bwd_delta_kernel":
            assert "wgmma.m64n" in row["mma"], row
    assert (tmp_path / "cross_attention_static.md").read_text().count("| yes |") == len(rows)
