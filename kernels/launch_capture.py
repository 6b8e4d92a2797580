"""Build the Triton kernels exactly as a launch would, for a GPU this machine does not have.

A real launch specializes each kernel on its arguments before compiling: pointers and integers divisible by 16
get ``tt.divisibility = 16``, integers equal to 1 become constants, and the constexprs and options come from the
launcher. A build without those attributes is a different program (other registers, scalar loads, no cp.async
pipelining). :func:`capture_launches` runs the launchers unchanged on CPU tensors under a stand-in driver that
reports the target GPU, and records what Triton's JIT would compile (its ``jit_cache_hook``, which also stops
the launch); :func:`build` then compiles that record with ``triton.compile`` for that target and reads the
build's registers, spills and stack (``ptxas -v`` of the ptxas Triton ships, on the PTX it made), shared memory
(Triton's metadata) and tensor-core MMA instructions (the PTX).

Needs Triton's real compiler: run without ``TRITON_INTERPRET`` (the interpreter replaces the JIT functions).
"""
from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import triton
from triton import knobs
from triton.backends.compiler import GPUTarget
from triton.backends.driver import DriverBase
from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability
from triton.runtime.driver import driver

# Shared memory one block may use (opt-in maximum, CUDA programming guide's table of compute capabilities), bytes,
# per compute capability: sm_90 (H100/H200), sm_80 (A100), sm_86 (RTX 30xx, A10, A40; sm_89's L4, L40S and RTX
# 40xx have the same limit), sm_100 (B200), sm_120 (RTX 50xx, RTX PRO 6000), sm_75 (T4, RTX 20xx).
SMEM_LIMIT = {90: 232448, 80: 166912, 86: 101376, 100: 232448, 120: 101376, 75: 65536}


class _TargetDriver(DriverBase):
    """Reports a CUDA target of compute capability ``cap``; launches nothing (the capture hook stops them)."""

    def __init__(self, cap: int):
        super().__init__()
        self.cap = cap

    @classmethod
    def is_active(cls) -> bool:
        return False

    def map_python_to_cpp_type(self, ty: str) -> str:
        raise NotImplementedError("the capture driver launches nothing")

    def get_current_target(self) -> GPUTarget:
        return GPUTarget("cuda", self.cap, 32)

    def get_active_torch_device(self) -> torch.device:
        return torch.device("cpu")

    def get_benchmarker(self):
        raise NotImplementedError("the capture driver launches nothing")

    def get_current_device(self) -> int:
        return self.cap  # one JIT cache per target

    def get_current_stream(self, device: int) -> int:
        return 0


@dataclass
class Launch:
    """What the JIT would compile for one launch: the kernel and its specialization."""

    kernel: triton.runtime.JITFunction
    signature: dict
    constexprs: dict
    attrs: dict
    options: dict  # the launch's num_warps, num_stages, num_ctas, enable_fp_fusion, launch_cooperative_grid

    @property
    def name(self) -> str:
        return self.kernel.fn.__name__

    def n_divisible(self) -> int:
        """How many arguments carry ``tt.divisibility = 16``."""
        return sum(any(a[0] == "tt.divisibility" for a in v) for v in self.attrs.values())


@contextlib.contextmanager
def capture_launches(cap: int):
    """Within the block, Triton launches compile nothing and run nothing; each is appended to the yielded list as
    a :class:`Launch` specialized for compute capability ``cap`` (90, 80, 86, 120, 100, ...)."""
    if triton.knobs.runtime.interpret:
        raise RuntimeError("capture_launches needs Triton's compiler: run without TRITON_INTERPRET=1")
    launches: list[Launch] = []

    def hook(*, key, repr, fn, compile, is_manual_warmup, already_compiled):
        launches.append(Launch(fn.jit_function, dict(compile["signature"]), dict(compile["constants"]),
                               dict(compile["configs"][0]),
                               {k: compile[k] for k in ("num_warps", "num_stages", "num_ctas", "enable_fp_fusion",
                                                        "launch_cooperative_grid")}))
        return True  # "handled": the JIT neither compiles nor launches

    previous_hook, previous_driver = knobs.runtime.jit_cache_hook, driver._active
    driver.set_active(_TargetDriver(cap))
    knobs.runtime.jit_cache_hook = hook
    try:
        yield launches
    finally:
        knobs.runtime.jit_cache_hook = previous_hook
        driver._active = previous_driver


@dataclass
class BuildReport:
    """Resources of one build: ``mma`` lists the distinct tensor-core instruction shapes in its PTX."""

    kernel: str
    target: str
    regs: int
    spill_stores: int
    spill_loads: int
    stack_bytes: int
    smem_bytes: int
    smem_limit: int
    n_divisible: int
    mma: list[str]
    num_warps: int
    num_stages: int
    needs_mma: bool  # the kernel multiplies matrices (False for elementwise ones)

    @property
    def tensor_core(self) -> bool:
        want = TENSOR_CORE_MMA.get(self.target, "mma")
        return any(m.startswith(want + ".") for m in self.mma)

    @property
    def ok(self) -> bool:
        return (self.spill_stores == 0 and self.spill_loads == 0 and self.smem_bytes <= self.smem_limit
                and (self.tensor_core or not self.needs_mma))


# The tensor-core instruction a target's matrix products must use: warpgroup MMA on Hopper, the 5th-generation
# tcgen05.mma on datacenter Blackwell, warp-level mma.sync elsewhere.
TENSOR_CORE_MMA = {"sm_90a": "wgmma", "sm_100a": "tcgen05"}
# The shape of wgmma and mma.sync is in the instruction; tcgen05.mma's is in its descriptor, so its kind is kept.
_MMA = re.compile(r"\b(?:(wgmma)\.mma_async(?:\.sp)?\.sync\.aligned\.(m\d+n\d+k\d+)"
                  r"|(mma)\.sync\.aligned\.(m\d+n\d+k\d+)|(tcgen05)\.mma\.cta_group::\d\.(kind::\w+))")


def mma_instructions(ptx: str) -> list[str]:
    """The distinct tensor-core MMA instructions of ``ptx``, as ``wgmma.m64n128k16``, ``mma.m16n8k16`` or
    ``tcgen05.kind::f16``."""
    found = set()
    for m in _MMA.finditer(ptx):
        groups = [g for g in m.groups() if g]
        found.add(".".join(groups))
    return sorted(found)


def target_name(cap: int) -> str:
    """Triton's name of the build target of compute capability ``cap`` (``sm_90a``, ``sm_80``, ``sm_100a``)."""
    return sm_arch_from_capability(cap)


def compile_only(launch: Launch, cap: int):
    """``triton.compile`` of ``launch`` for compute capability ``cap`` (into Triton's cache, as the JIT would)."""
    from triton.compiler import ASTSource

    src = ASTSource(launch.kernel, launch.signature, launch.constexprs, launch.attrs)
    return triton.compile(src, target=GPUTarget("cuda", cap, 32), options=launch.options)


def _ptxas(cap: int) -> str:
    """The ptxas Triton itself assembles ``cap``'s PTX with (Blackwell has its own, of a newer CUDA)."""
    return get_ptxas(cap).path


def build(launch: Launch, cap: int, needs_mma: bool = True) -> BuildReport:
    """Compile ``launch`` for compute capability ``cap`` with Triton's ptxas and report its resources;
    ``needs_mma``: whether the kernel must use tensor-core MMA to pass (:attr:`BuildReport.ok`)."""
    compiled = compile_only(launch, cap)
    with tempfile.TemporaryDirectory() as tmp:  # the resource report of the PTX Triton made (its cache skips it)
        ptx_file = Path(tmp) / "kernel.ptx"
        ptx_file.write_text(compiled.asm["ptx"])
        text = subprocess.run([_ptxas(cap), "-v", f"--gpu-name={target_name(cap)}", str(ptx_file),
                               "-o", str(Path(tmp) / "kernel.cubin")], capture_output=True, text=True,
                              check=True).stderr
    regs = re.search(r"Used (\d+) registers", text)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    stack = re.search(r"(\d+) bytes stack frame", text)
    if not (regs and spills and stack):
        raise RuntimeError(f"no resource report from ptxas for {launch.name}:\n{text[-2000:]}")
    return BuildReport(launch.name, target_name(cap), int(regs.group(1)), int(spills.group(1)), int(spills.group(2)),
                       int(stack.group(1)), int(compiled.metadata.shared), SMEM_LIMIT[cap], launch.n_divisible(),
                       mma_instructions(compiled.asm["ptx"]), launch.options["num_warps"],
                       launch.options["num_stages"], needs_mma)
