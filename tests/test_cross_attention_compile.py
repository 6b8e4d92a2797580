"""The compiled (non-interpreted) path, built as launched: the kernels for every GPU class the dispatcher runs them
on (Hopper sm_90a, Ampere sm_80, Ampere/Ada sm_86, consumer Blackwell sm_120a, datacenter Blackwell sm_100a)
without a GPU.

The interpreter runs the kernels' Python, so it cannot catch errors that only the Triton compiler sees (types
across branches, constexpr misuse, layouts) nor register spills. A subprocess without TRITON_INTERPRET runs
``benchmarks/static_cross_attention.py --sample``: the launchers run unchanged on CPU tensors under a stand-in
driver for each target, Triton's JIT records each launch's specialization (``tt.divisibility`` on the pointers
and strides, as a real launch marks them; a build without them is another program), and each is compiled with
Triton's ptxas. Built on each target: the targeted case (bf16, Dh 64, window and bias, the shipped tiles) with
the deterministic and the atomic-dq backward, every kernel, and the dk/dv kernels that spilled most before the
tile tables were made per target ("large" at Dh 128, "narrow" at Dh 64, atomic dq, window and bias). Every build
must have 0 spills, fit the shared memory of one block and, where it multiplies matrices, use the target's
tensor-core MMA (wgmma on sm_90a, tcgen05.mma on sm_100a, mma.sync elsewhere); and each launch must carry the
tiles of its target's table (the dispatcher picks the table by the launch's compute capability). The full table
(every configuration the dispatcher can pick) is the script's job: benchmarks/results/static/.
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
# Shared memory one block may use, bytes (CUDA programming guide, per compute capability)
SMEM_LIMIT = {"sm_90a": 227 * 1024, "sm_80": 163 * 1024, "sm_86": 99 * 1024, "sm_120a": 99 * 1024,
              "sm_100a": 227 * 1024}
ARCH = {"sm_90a": "sm90", "sm_80": "sm80", "sm_86": "sm80", "sm_120a": "sm80", "sm_100a": "sm100"}
MMA = {"sm_90a": "wgmma.m64n", "sm_100a": "tcgen05.kind::f16"}  # else mma.sync's m16n8k16
PASS = {"fwd_kernel": "fwd", "bwd_dq_kernel": "dq", "bwd_dkdv_kernel": "dkdv"}


def test_kernels_build_as_launched_for_every_gpu_class(tmp_path):
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
            want = MMA.get(row["target"], "mma.m16n8k16")
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
        for head_dim in (16, 64, 96, 128):
            cfg = ca._gpu_config(head_dim, torch.bfloat16, name, arch)
            assert set(cfg) == passes, (name, arch, head_dim)
            for pas in passes - {"delta"}:
                block_m, block_n, warps, stages = cfg[pas]
                assert block_m >= 16 and block_n >= 16 and warps in (1, 2, 4, 8) and stages >= 1


@pytest.mark.parametrize("capability, arch", [((8, 0), "sm80"), ((8, 6), "sm80"), ((8, 9), "sm80"), ((9, 0), "sm90"),
                                              ((10, 0), "sm100"), ((10, 3), "sm100"), ((12, 0), "sm80")])
def test_a_cuda_launch_takes_the_table_of_its_gpu_class(monkeypatch, capability, arch):
    """A100 / A10 / L40S: sm80; H100: sm90; B200 / B300: sm100; RTX 5090: sm80 (mma.sync and 99 KB, as sm_86)."""
    from types import SimpleNamespace

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert ca.arch_class(SimpleNamespace(is_cuda=True, device=torch.device("cuda", 0))) == arch
