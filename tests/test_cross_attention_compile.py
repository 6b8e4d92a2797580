"""The compiled (non-interpreted) path, built as launched: the kernels for Hopper (sm_90a) and Ampere (sm_80)
without a GPU.

The interpreter runs the kernels' Python, so it cannot catch errors that only the Triton compiler sees (types
across branches, constexpr misuse, layouts) nor register spills. A subprocess without TRITON_INTERPRET runs
``benchmarks/static_cross_attention.py --sample``: the launchers run unchanged on CPU tensors under a stand-in
driver for each target, Triton's JIT records each launch's specialization (``tt.divisibility`` on the pointers
and strides, as a real launch marks them; a build without them is another program), and each is compiled with
Triton's ptxas. Built on both targets: the targeted case (bf16, Dh 64, window and bias, the shipped tiles) with
the deterministic and the atomic-dq backward, every kernel, and the dk/dv kernels that spilled most before the
tile tables were made per target ("large" at Dh 128, "narrow" at Dh 64, atomic dq, window and bias). Every build
must have 0 spills, fit the shared memory of one block and, where it multiplies matrices, use the target's
tensor-core MMA (wgmma on sm_90a, mma on sm_80); and each launch must carry the tiles of its target's table (the
dispatcher picks the table by the launch's target). The full table (every configuration the dispatcher can
pick) is the script's job: benchmarks/results/static/.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from avspeech.kernels import cross_attention as ca

REPO = Path(__file__).resolve().parents[1]
SMEM_LIMIT = {"sm_90a": 232448, "sm_80": 166912}
ARCH = {"sm_90a": "sm90", "sm_80": "sm80"}
PASS = {"fwd_kernel": "fwd", "bwd_dq_kernel": "dq", "bwd_dkdv_kernel": "dkdv"}


def test_kernels_build_as_launched_for_hopper_and_ampere(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "static_cross_attention.py"), "--sample",
                        "--jobs", "2", "--out", str(tmp_path)], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "cross_attention_static.csv")))
    assert {row["target"] for row in rows} == set(SMEM_LIMIT)
    for target in SMEM_LIMIT:
        shipped = {(row["kernel"], row["deterministic"]) for row in rows
                   if row["target"] == target and row["tiles"] == ca.DEFAULT_TILES}
        passes = ("fwd_kernel", "bwd_delta_kernel", "bwd_dkdv_kernel")
        # the atomic-dq backward (deterministic False) has no dq pass
        assert shipped == {(k, d) for k in passes for d in ("True", "False")} | {("bwd_dq_kernel", "True")}, shipped
        others = {(row["tiles"], row["head_dim"], row["kernel"], row["deterministic"]) for row in rows
                  if row["target"] == target and row["tiles"] != ca.DEFAULT_TILES}
        assert others == {("large", "128", "bwd_dkdv_kernel", "False"), ("narrow", "64", "bwd_dkdv_kernel", "False")}
    for row in rows:
        assert row["ok"] == "True", row
        assert int(row["spill_stores"]) == 0 and int(row["spill_loads"]) == 0, row
        assert int(row["smem_bytes"]) <= SMEM_LIMIT[row["target"]], row
        # the launch's specialization: pointers and 16-divisible strides carry tt.divisibility
        assert int(row["divisible_args"]) >= 12, row
        if row["kernel"] != "bwd_delta_kernel":
            want = "wgmma.m64n" if row["target"] == "sm_90a" else "mma.m16n8k16"
            assert want in row["mma"], row
            # the tiles of the launch's own target table
            table = ca._by_head_dim(ca.TILE_VARIANTS[row["tiles"]][ARCH[row["target"]]], int(row["head_dim"]))
            pas = PASS[row["kernel"]] + ("_atomic" if row["kernel"] == "bwd_dkdv_kernel" and
                                         row["deterministic"] == "False" else "")
            block_m, block_n, warps, stages = table[pas]
            assert (row["tiles_mn"], int(row["num_warps"]), int(row["num_stages"])) == \
                (f"{block_m}x{block_n}", warps, stages), row
    assert (tmp_path / "cross_attention_static.md").read_text().count("| yes |") == len(rows)


@pytest.mark.parametrize("name", sorted(ca.TILE_VARIANTS))
def test_every_variant_has_a_table_per_target(name):
    passes = {"fwd", "dq", "dkdv", "dkdv_atomic", "delta"}
    assert set(ca.TILE_VARIANTS[name]) == set(ca.ARCH_CLASSES)
    for arch in ca.ARCH_CLASSES:
        for head_dim in (64, 128, 256):
            cfg = ca._gpu_config(head_dim, torch.bfloat16, name, arch)
            assert set(cfg) == passes, (name, arch, head_dim)
            for pas in passes - {"delta"}:
                block_m, block_n, warps, stages = cfg[pas]
                assert block_m >= 16 and block_n >= 16 and warps in (1, 2, 4, 8) and stages >= 1
