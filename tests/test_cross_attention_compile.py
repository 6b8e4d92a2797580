"""The compiled (non-interpreted) path: build the kernels for Hopper (sm_90) without a GPU.

The interpreter runs the kernels' Python, so it cannot catch errors that only the Triton compiler sees (types
across branches, constexpr misuse, layouts) nor register spills. A subprocess without TRITON_INTERPRET
compiles the forward and backward kernels for the targeted case (bf16, Dh = 64, window and bias on, the
launcher's tiles) and runs ptxas on them: they must build and not spill registers.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import os, subprocess, tempfile
    import torch, triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from avspeech.kernels import cross_attention as ca

    def arg_type(name):
        if name in ("Len_a", "Len_v"):
            return "*i64"
        if name.startswith("Win"):
            return "*i32"
        if name in ("Slopes", "dSlope") or name.startswith(("Lse", "Delta")):
            return "*fp32"
        if name.startswith(("s_", "so_")) or name in ("H", "La", "Lv"):
            return "i32"
        if name[0].isupper() or (name[0] == "d" and name[1].isupper()):
            return "*bf16"
        return "fp32"

    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    cfg = ca._gpu_config(64, torch.bfloat16)
    kernels = dict(fwd=ca._cross_attn_fwd_kernel, dq=ca._cross_attn_bwd_dq_kernel,
                   dkdv=ca._cross_attn_bwd_dkdv_kernel, delta=ca._cross_attn_bwd_delta_kernel)
    for name, kernel in kernels.items():
        c = cfg[name]
        const = dict(HEAD_DIM=64, BLOCK_D=64, BLOCK_M=c[0])
        opts = dict(num_warps=c[-1])
        if name != "delta":
            const.update(BLOCK_N=c[1], DOT_PREC="tf32", HAS_WINDOW=True, HAS_BIAS=True)
            opts = dict(num_warps=c[2], num_stages=c[3])
        sig = {a: "constexpr" if a in const else arg_type(a) for a in kernel.arg_names}
        out = triton.compile(ASTSource(kernel, sig, constexprs=const), target=GPUTarget("cuda", 90, 32),
                             options=opts)
        with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
            f.write(out.asm["ptx"])
        info = subprocess.run([ptxas, "-v", "--gpu-name=sm_90a", f.name, "-o", os.devnull],
                              capture_output=True, text=True, check=True).stderr
        spill = [l for l in info.splitlines() if "spill stores" in l][0]
        print(name, spill.strip())
        assert " 0 bytes spill stores" in spill, (name, spill)
''')


def test_kernels_build_for_hopper_without_spills():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert r.stdout.count("0 bytes spill stores") == 4, r.stdout
