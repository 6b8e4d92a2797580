"""Static check of the cross-modal attention kernels, built as launched, for each GPU class the dispatcher runs
them on: sm_90a (H100/H200), sm_80 (A100), sm_86 (RTX 30xx, A10, A40; sm_89's L4/L40S/RTX 40xx alike), sm_120a
(RTX 50xx, RTX PRO 6000) and sm_100a (B200).

For every configuration the dispatcher can pick (tile variant, Dh 64 and 128, fp16 and bf16, window and bias on
and off, both directions or one, the deterministic and the atomic-dq backward) the launchers run unchanged on CPU
tensors under :func:`avspeech.kernels.launch_capture.capture_launches`, which records each launch's
specialization (``tt.divisibility`` on the arguments a real launch would mark, constexprs, warps, stages); each
distinct specialization is compiled once with Triton's ptxas. Checked per build: 0 spill bytes, shared memory
within the target's limit, the target's tensor-core MMA (wgmma on sm_90a, tcgen05.mma on sm_100a, mma.sync
elsewhere). ``--targets 75`` builds for a T4 (not a class the dispatcher runs the kernels on: see
``MIN_CAPABILITY`` in kernels/cross_attention.py).

Writes ``benchmarks/results/static/cross_attention_static.csv`` (one row per configuration and kernel) and
``cross_attention_static.md`` (a table per target and variant). Exit status 1 if any build fails a check.

    python benchmarks/static_cross_attention.py --jobs 2          # the full table (8.5 min on 2 cores, cache warm)
    python benchmarks/static_cross_attention.py --sample --out /tmp/static   # a few configurations (the test)
    python benchmarks/static_cross_attention.py --tiles large --head-dims 128 --kernels bwd_dkdv --out /tmp/s
"""
from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

if os.environ.get("TRITON_INTERPRET"):
    sys.exit("static_cross_attention: run without TRITON_INTERPRET=1 (it needs Triton's compiler)")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from einops import rearrange
from tqdm import tqdm

from avspeech.io.atomic import atomic_write_csv, atomic_write_text
from avspeech.kernels import cross_attention as ca
from avspeech.kernels.launch_capture import BuildReport, Launch, build, capture_launches, compile_only

RESULTS = Path(__file__).resolve().parent / "results" / "static"
# compute capabilities: H100/H200, A100, RTX 30xx/A10/A40 (sm_89 alike), RTX 50xx, B200
TARGETS = (90, 80, 86, 120, 100)
# The package's training crop: 500 frames at 25 Hz (not a multiple of 16, as most real lengths are not).
B, H, L = 2, 12, 500
KERNELS = ("fwd", "bwd_delta", "bwd_dq", "bwd_dkdv")  # _cross_attn_<name>_kernel
ELEMENTWISE = {"_cross_attn_bwd_delta_kernel"}  # kernels without matrix products (no MMA expected)


@dataclass(frozen=True)
class Config:
    tiles: str
    head_dim: int
    dtype: str
    window: bool
    bias: bool
    direction: str  # "both" or "one-way"
    deterministic: bool
    La: int = L
    Lv: int = L

    def label(self) -> str:
        return (f"{self.tiles} Dh{self.head_dim} {self.dtype} {'win' if self.window else 'dense'}"
                f"{'+bias' if self.bias else ''} {self.direction}{'' if self.deterministic else ' atomic-dq'}")


def all_configs() -> list[Config]:
    return [Config(*c) for c in itertools.product(sorted(ca.TILE_VARIANTS), (64, 128), ("float16", "bfloat16"),
                                                  (False, True), (False, True), ("both", "one-way"),
                                                  (True, False))]


def sample_configs() -> list[tuple[Config, set[str] | None]]:
    """What the test builds, on both targets: the shipped table's targeted case (bf16, Dh 64, window and bias,
    both directions) in both backward forms (every kernel), and the dk/dv kernel of the atomic-dq backward of
    "large" at Dh 128 and "narrow" at Dh 64 with window and bias, the builds that spilled most before the tables
    were made per target (up to 3 KB). Pairs of (configuration, kernels to build; None for all)."""
    dkdv = {"_cross_attn_bwd_dkdv_kernel"}
    return [(Config(ca.DEFAULT_TILES, 64, "bfloat16", True, True, "both", True), None),
            (Config(ca.DEFAULT_TILES, 64, "bfloat16", True, True, "both", False), None),
            (Config("large", 128, "bfloat16", True, True, "both", False), dkdv),
            (Config("narrow", 64, "bfloat16", True, True, "both", False), dkdv)]


def launches_of(cfg: Config, cap: int) -> list[Launch]:
    """What the forward and backward launchers launch for ``cfg`` on compute capability ``cap``."""
    dtype = getattr(torch, cfg.dtype)
    D = H * cfg.head_dim
    qkv_a = torch.zeros(B, cfg.La, 3 * D, dtype=dtype)  # the module's layout: views of one projection
    qkv_v = torch.zeros(B, cfg.Lv, 3 * D, dtype=dtype)
    q_a, k_a, v_a = rearrange(qkv_a, "b l (three h d) -> three b h l d", three=3, h=H)
    q_v, k_v, v_v = rearrange(qkv_v, "b l (three h d) -> three b h l d", three=3, h=H)
    len_a, len_v = torch.tensor([cfg.La, cfg.La // 2]), torch.tensor([cfg.Lv, cfg.Lv // 2])
    slopes = torch.ones(H) if cfg.bias else None
    window = 1.0 if cfg.window else None
    both = cfg.direction == "both"
    scale = cfg.head_dim ** -0.5
    with capture_launches(cap) as launches:
        a = (q_a, k_a, v_a, q_v, k_v, v_v) if both else (q_a, None, None, None, k_v, v_v)
        out_a, out_v, lse_a, lse_v, win_a, win_v = ca._forward(*a, len_a, len_v, slopes, 25.0, 25.0, window, scale,
                                                               both, cfg.tiles)
        grads = (torch.zeros_like(out_a), torch.zeros_like(out_v) if both else None)
        ca._backward(*grads, *a, out_a, out_v, lse_a, lse_v, len_a, len_v, slopes, 25.0, 25.0, window, scale,
                     win_a, win_v, both, cfg.tiles, cfg.deterministic)
    return launches


def _key(launch: Launch) -> tuple:
    return (launch.name, tuple(sorted(launch.signature.items())), repr(sorted(launch.constexprs.items())),
            repr(sorted(launch.attrs.items())), tuple(sorted(launch.options.items())))


def warm_configs() -> list[Config]:
    """What benchmarks/bench_cross_attention_shapes.py launches on a GPU (bf16, Dh 64, bias, both directions, its
    (La, Lv) pairs, window on and off, every variant): ``--warm`` compiles these into Triton's cache beforehand."""
    from bench_cross_attention_shapes import LONG_SHAPES, PACKAGE_SHAPES

    pairs = sorted({(s[3], s[4]) for s in PACKAGE_SHAPES + LONG_SHAPES})
    return [Config(t, 64, "bfloat16", w, True, "both", d, La, Lv) for t in sorted(ca.TILE_VARIANTS)
            for d in (True, False) for w in (False, True) for La, Lv in pairs]


def _compile_unique(i: int) -> None:
    cap, launch = _UNIQUE[i]
    compile_only(launch, cap)


_UNIQUE: list[tuple[int, Launch]] = []  # the distinct builds of run(), read by forked workers


def _build_unique(i: int) -> BuildReport:
    cap, launch = _UNIQUE[i]
    return build(launch, cap, needs_mma=launch.name not in ELEMENTWISE)


def _collect(configs: list[tuple[Config, set[str] | None]], targets) -> tuple[list, dict]:
    """Every (target, config, launch) of the kernels named with each config (None: all), and each distinct
    specialization's index in ``_UNIQUE``."""
    todo = [(cap, cfg, launch) for cap in targets for cfg, kernels in configs for launch in launches_of(cfg, cap)
            if kernels is None or launch.name in kernels]
    index: dict[tuple, int] = {}
    _UNIQUE.clear()
    for cap, _, launch in todo:
        key = (cap, _key(launch))
        if key not in index:
            index[key] = len(_UNIQUE)
            _UNIQUE.append((cap, launch))
    return todo, index


def _each_unique(fn, jobs: int) -> list:
    bar = dict(desc="builds", unit="build", total=len(_UNIQUE), disable=None)
    if jobs > 1:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            return list(tqdm(pool.imap(fn, range(len(_UNIQUE))), **bar))
    return [fn(i) for i in tqdm(range(len(_UNIQUE)), **bar)]


def warm(jobs: int, limit: int | None = None) -> int:
    """Compile what the shapes benchmark will launch on sm_90 into Triton's cache (no reports): the GPU session
    then launches from the cache instead of compiling ~90 kernels one after another. ``limit``: the first few."""
    _collect([(c, None) for c in warm_configs()], (90,))
    del _UNIQUE[limit:]
    _each_unique(_compile_unique, jobs)
    return len(_UNIQUE)


def run(configs: list[tuple[Config, set[str] | None]], targets=TARGETS, jobs: int = 1) -> list[dict]:
    """Rows: one per (target, configuration, kernel launched, of those named with the configuration; None: all);
    identical specializations are built once, by ``jobs`` forked processes."""
    todo, index = _collect(configs, targets)
    reports = _each_unique(_build_unique, jobs)
    rows = []
    for cap, cfg, launch in todo:
        r = reports[index[(cap, _key(launch))]]
        rows.append(dict(target=r.target, **asdict(cfg), kernel=r.kernel.removeprefix("_cross_attn_"),
                         regs=r.regs, spill_stores=r.spill_stores, spill_loads=r.spill_loads,
                         stack_bytes=r.stack_bytes, smem_bytes=r.smem_bytes, smem_limit=r.smem_limit,
                         divisible_args=r.n_divisible, mma=" ".join(r.mma), num_warps=r.num_warps,
                         num_stages=r.num_stages, tiles_mn=_tiles_of(launch), ok=r.ok))
    return rows


def _tiles_of(launch: Launch) -> str:
    names = launch.kernel.arg_names
    c = {names[k[0]]: v for k, v in launch.constexprs.items()}
    return "x".join(str(c[n]) for n in ("BLOCK_M", "BLOCK_N") if n in c)


def markdown(rows: list[dict]) -> str:
    out = ["# Cross-modal attention kernels built as launched (static check)", "",
           f"Specialized by the launchers on B={B}, H={H}, La=Lv={L} (the training crop), built with Triton "
           f"{__import__('triton').__version__}'s ptxas. Written by `benchmarks/static_cross_attention.py`. "
           "`ok`: 0 spills, shared memory within the target's limit, the target's tensor-core MMA "
           "(wgmma on sm_90a, tcgen05.mma on sm_100a, mma.sync elsewhere).", ""]
    counts, limits = {}, {}
    for r in rows:
        n = counts.setdefault((r["target"], r["tiles"]), [0, 0])
        n[0] += bool(r["ok"])
        n[1] += 1
        limits[r["target"]] = int(r["smem_limit"])
    out += ["| target | smem limit KB | tiles | ok / builds |", "|---|---|---|---|"]
    out += [f"| {t} | {limits[t] / 1024:.0f} | `{v}` | {ok}/{n} |" for (t, v), (ok, n) in sorted(counts.items())]
    out += [f"| all | | | {sum(c[0] for c in counts.values())}/{len(rows)} |", ""]
    head = ("| config | kernel | tiles | warps/stages | regs | spills (st/ld B) | smem KB | div16 args | MMA | ok |")
    for (target, tiles), group in itertools.groupby(sorted(rows, key=lambda r: (r["target"], r["tiles"])),
                                                    key=lambda r: (r["target"], r["tiles"])):
        group = list(group)
        out += [f"## {target}, tiles `{tiles}` ({sum(r['ok'] for r in group)}/{len(group)} ok)", "", head,
                "|" + "---|" * 10]
        for r in group:
            cfg = Config(**{k: r[k] for k in Config.__dataclass_fields__})
            out.append(f"| {cfg.label().split(' ', 1)[1]} | {r['kernel']} | {r['tiles_mn']} | "
                       f"{r['num_warps']}/{r['num_stages']} | {r['regs']} | {r['spill_stores']}/{r['spill_loads']} | "
                       f"{r['smem_bytes'] / 1024:.1f} | {r['divisible_args']} | {r['mma']} | "
                       f"{'yes' if r['ok'] else '**NO**'} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sample", action="store_true", help="a few configurations only (what the test runs)")
    ap.add_argument("--targets", type=int, nargs="+", choices=TARGETS + (75,), default=list(TARGETS),
                    help="compute capabilities to build for (default: %(default)s)")
    ap.add_argument("--tiles", nargs="+", choices=sorted(ca.TILE_VARIANTS), help="only these tile variants")
    ap.add_argument("--head-dims", type=int, nargs="+", choices=(64, 128), help="only these head dims")
    ap.add_argument("--kernels", nargs="+", choices=KERNELS, help="only these kernels")
    ap.add_argument("--jobs", type=int, default=1, help="build processes (default 1)")
    ap.add_argument("--warm", action="store_true", help="only compile what bench_cross_attention_shapes.py "
                    "launches on sm_90 into Triton's cache (the GPU session's first step; no table)")
    ap.add_argument("--limit", type=int, help="with --warm: only the first N kernels")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    args = ap.parse_args(argv)
    if args.warm:
        print(f"compiled {warm(args.jobs, args.limit)} kernels for sm_90a into Triton's cache")
        return 0
    configs = sample_configs() if args.sample else [(c, None) for c in all_configs()]
    kernels = None if args.kernels is None else {f"_cross_attn_{k}_kernel" for k in args.kernels}
    configs = [(c, kernels if k is None else k & (kernels or k)) for c, k in configs
               if (not args.tiles or c.tiles in args.tiles) and (not args.head_dims or c.head_dim in args.head_dims)]
    rows = run(configs, args.targets, args.jobs)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(args.out / "cross_attention_static.csv", rows)
    atomic_write_text(args.out / "cross_attention_static.md", markdown(rows) + "\n")
    bad = [r for r in rows if not r["ok"]]
    for r in bad:
        print(f"FAIL {r['target']} {r['kernel']} {r}", file=sys.stderr)
    print(f"{len(rows) - len(bad)}/{len(rows)} builds ok; wrote {args.out / 'cross_attention_static.csv'} and .md")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
