#!/usr/bin/env bash
# One GPU session for the cross-modal attention kernel: everything a 15-minute H100/H200 window must produce, in
# at most 9 minutes, written under benchmarks/results/<gpu>/ with a summary.md.
#
#   benchmarks/gpu_session.sh                  # on the GPU machine, from the repository root
#   benchmarks/gpu_session.sh --dry-run        # here: tiny shapes, interpreter / reference, every stage once
#   benchmarks/gpu_session.sh --prepare        # here (CPU, network): the built-in corpus for `pretrain` in
#                                              # .gpu_session/, the media wheels the GPU image lacks in .whl/, and
#                                              # the size a device call would send (gpu_session_prepare.py)
#
# With the device tool, after --prepare: run(command="benchmarks/gpu_session.sh", carry=[".gpu_session", ".whl"],
# timeout_s=570); commit benchmarks/results/<gpu>/ from the results.tar.gz it brings back.
#
# Stages, each under its own time limit (seconds, 515 in all) and all under one deadline, 530 s after the script
# starts (a stage gets what is left when that is less; under 10 s left, it is skipped): at most 9 minutes.
# The numbers the issue asks for come first; the tests, slow to compile, after them.
#   env 15         nvidia-smi, torch / triton versions, which optional packages are importable
#   warm 40        benchmarks/static_cross_attention.py --warm: the next stage's ~90 Triton kernels compiled in
#                  parallel into Triton's cache (launches then load them instead of compiling one by one)
#   attention 150  benchmarks/bench_cross_attention_shapes.py: every kernel variant and SDPA (mask; flash without)
#                  at the package's lengths and the long ones (dense 8,192 first), each kernel row checked against
#                  float64; stops measuring after 125 s, keeps what it has
#   attention_flex 80  the same for FlexAttention (compiled per shape; block masks prebuilt and per call), added
#                  to the same table: ratios against SDPA, SDPA flash and FlexAttention, the fastest variant per
#                  shape (tile_choice.csv)
#   tests 100      the CUDA tests of the kernels (bf16 included, every tile variant; the CPU cases skip on a GPU)
#   train_step 50  benchmarks/bench_train_step.py: a `base` step, cross vs concat fusion, bf16 autocast
#   pretrain 45    50 steps of `base` on the built-in corpus with the kernel (needs .gpu_session/ or media packages)
#   separate 35    benchmarks/bench_separate.py: the separation model on two 60 s face tracks, CPU and GPU side by
#                  side (real-time factor; runs anywhere), then `separate` on a 60 s two-face clip where the media
#                  packages are there (decord and mediapipe do not travel: mediapipe needs numpy<2)
# A stage that fails or runs out of time is recorded as such and the next one starts. With the device tool,
# summary.md, the stage logs and a tar.gz of the results folder are also copied to $OUT.
#
# Options: --out DIR (results folder; default benchmarks/results/<gpu>, a temp folder for --dry-run),
#          --only a,b (run only these stages), --prep DIR (the prepared corpus; default .gpu_session),
#          PYTHON=... (interpreter; default python3), GPU_SESSION_SECONDS=... (the deadline; default 530, an hour
#          for --dry-run).
set -u -o pipefail
T_START=$(date +%s)
DEADLINE=$(( T_START + ${GPU_SESSION_SECONDS:-530} ))
cd "$(dirname "$0")/.."
REPO=$(pwd)
DRY=0
PREPARE=0
RES=""
ONLY=""
PREP_ARG=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --prepare) PREPARE=1 ;;
    --out) RES="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    --prep) PREP_ARG="$2"; shift ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "gpu_session.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
PY=${PYTHON:-python3}
PREP=${PREP_ARG:-$REPO/.gpu_session}  # the prepared corpus (ignored by git; name it in the device tool's carry)

# avspeech importable as installed, else from a copy of the tree with kernels/ as avspeech.kernels (the GPU image
# has no copy of the package installed; nothing can be installed there)
if ! "$PY" -c "import avspeech.kernels" >/dev/null 2>&1; then
  SITE=$(mktemp -d)
  cp -r "$REPO/avspeech" "$SITE/avspeech" && rm -rf "$SITE/avspeech/kernels" && cp -r "$REPO/kernels" "$SITE/avspeech/kernels"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  # `python -m` and `-c` put the working directory (the repository root) first on sys.path, and its avspeech/
  # (without kernels/) would hide the copy: Python 3.11+ leaves it out under PYTHONSAFEPATH (the benchmark
  # scripts put their own folder on the path themselves)
  export PYTHONSAFEPATH=1
fi
export PYTHONUNBUFFERED=1
# Python packages missing on the GPU image (the pretrain stage needs av and soundfile, separate also decord and
# mediapipe) travel as wheels in .whl/ (ignored by git; made by --prepare, named in carry).
if [ "$DRY" = 0 ] && [ "$PREPARE" = 0 ] && ls "$REPO"/.whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/avspeech_wheels "$REPO"/.whl/*.whl \
    && export PYTHONPATH="/tmp/avspeech_wheels${PYTHONPATH:+:$PYTHONPATH}"
fi

if [ "$PREPARE" = 1 ]; then
  "$PY" benchmarks/gpu_session_prepare.py --corpus "$PREP"
  exit $?
fi

if [ "$DRY" = 1 ]; then
  [ -z "${GPU_SESSION_SECONDS:-}" ] && DEADLINE=$(( T_START + 3600 ))  # the interpreter is slow; no GPU time is spent
  export TRITON_INTERPRET=1 CUDA_VISIBLE_DEVICES=""
  SLUG=dry-run
  RES=${RES:-$(mktemp -d)/dry-run}
else
  SLUG=$("$PY" -c "import re, torch; print(re.sub(r'[^a-z0-9]+', '-', torch.cuda.get_device_name().lower()).strip('-'))" 2>/dev/null) || {
    echo "gpu_session.sh: no CUDA device visible to $PY (use --dry-run on a CPU machine)" >&2; exit 2; }
  RES=${RES:-$REPO/benchmarks/results/$SLUG}
fi
mkdir -p "$RES/logs"
STAGES="$RES/logs/stages.tsv"
: > "$STAGES"

# stage NAME LIMIT_S CMD...: run CMD under the limit, log to logs/NAME.log, record status and seconds
stage() {
  local name=$1 limit=$2 start rc status left
  shift 2
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then return 0; fi
  start=$(date +%s)
  left=$(( DEADLINE - start ))
  if [ "$left" -lt 10 ]; then
    printf '%s\t%s\t%s\t%s\n' "$name" "skipped: the session's deadline" 0 "$limit" >> "$STAGES"
    echo "== $name: skipped (the session's deadline)"; return 0
  fi
  [ "$left" -lt "$limit" ] && limit=$left
  echo "== $name (limit ${limit}s)"
  timeout -k 3 "$limit" bash -c "$*" > "$RES/logs/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124|137) status="timed out" ;;
    77) status="skipped: $(tail -n 1 "$RES/logs/$name.log")" ;;
    *) status="failed (exit $rc)" ;;
  esac
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - start ))" "$limit" >> "$STAGES"
  echo "   $status in $(( $(date +%s) - start ))s"
}

need_media() {  # need_media MOD...: exit 77 (skipped) unless these packages import
  local m
  for m in "$@"; do
    "$PY" -c "import $m" >/dev/null 2>&1 || {
      echo "needs $* ($m is not importable here; carry wheels in .whl/, see the header)"; exit 77; }
  done
}

env_info() {
  nvidia-smi 2>&1 || echo "(no nvidia-smi)"
  "$PY" - <<'EOF'
import importlib, platform, torch, triton
print("python", platform.python_version(), "torch", torch.__version__, "triton", triton.__version__)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(p.name, f"sm_{p.major}{p.minor}", p.multi_processor_count, "SMs", round(p.total_memory / 2**30), "GiB")
for name in ("decord", "soundfile", "av", "mediapipe", "pytest_timeout", "einops", "tqdm", "safetensors"):
    try:
        importlib.import_module(name)
        print(name, "yes")
    except Exception as e:
        print(name, "no:", type(e).__name__)
EOF
}

run_tests() {
  local files=(tests/test_cross_attention.py tests/test_cross_attention_one_way.py tests/test_cross_attention_module.py
               tests/test_cross_attention_flex.py tests/test_cross_attention_variants.py)
  if [ "$DRY" = 1 ]; then
    "$PY" -m pytest --collect-only -q -p no:cacheprovider "${files[@]}"
  else
    local per_test=()
    "$PY" -c "import pytest_timeout" >/dev/null 2>&1 && per_test=(--timeout 60)
    "$PY" -m pytest -q -p no:cacheprovider -rfE "${per_test[@]}" --junitxml="$RES/tests.xml" "${files[@]}"
  fi
}

run_warm() {  # the attention stage's kernels, compiled in parallel into Triton's cache (no GPU needed)
  if [ "$DRY" = 1 ]; then
    env -u TRITON_INTERPRET "$PY" benchmarks/static_cross_attention.py --warm --limit 1
  else
    "$PY" benchmarks/static_cross_attention.py --warm --jobs "$(nproc)"
  fi
}

ATT_MAIN="triton:shipped triton:large triton:narrow triton:shipped:atomic triton:large:atomic sdpa_mask sdpa_flash"
run_attention() {  # ours and SDPA first; FlexAttention (compiled per shape) next, in its own stage and time
  if [ "$DRY" = 1 ]; then
    "$PY" benchmarks/bench_cross_attention_shapes.py --dry-run --out "$RES" --providers $ATT_MAIN
  else
    "$PY" benchmarks/bench_cross_attention_shapes.py --budget-s 125 --out "$RES" --providers $ATT_MAIN
  fi
}

run_attention_flex() {
  if [ "$DRY" = 1 ]; then
    "$PY" benchmarks/bench_cross_attention_shapes.py --dry-run --out "$RES" --providers flex:prebuilt flex --append
  else
    "$PY" benchmarks/bench_cross_attention_shapes.py --budget-s 70 --out "$RES" --providers flex:prebuilt flex --append
  fi
}

run_train_step() {
  if [ "$DRY" = 1 ]; then
    AVSPEECH_ATTENTION=reference "$PY" benchmarks/bench_train_step.py --model tiny --batch 1 --frames 8 --steps 1 \
      --clusters 5 --out "$RES/train_step"
  else
    "$PY" benchmarks/bench_train_step.py --model base --batch 8 --frames 250 --steps 5 --out "$RES/train_step"
  fi
}

run_pretrain() {
  local data=()
  if [ -f "$PREP/pretrain_data.json" ]; then  # the prepared corpus, its manifest re-rooted where it is now
    need_media av soundfile
    "$PY" - "$PREP" "$RES/pretrain_manifest.tsv" <<'EOF' || exit 1
import json, sys
from pathlib import Path
prep, out = Path(sys.argv[1]), Path(sys.argv[2])
d = json.loads((prep / "pretrain_data.json").read_text())
lines = (prep / d["manifest"]).read_text().splitlines()
out.write_text("\n".join([str(prep / d["root"])] + lines[1:]) + "\n")
EOF
    data=(--manifest "$RES/pretrain_manifest.tsv" --labels "$PREP/$("$PY" -c "import json, sys; print(json.load(open(sys.argv[1]))['labels'])" "$PREP/pretrain_data.json")")
  else
    need_media decord soundfile av mediapipe
  fi
  if [ "$DRY" = 1 ]; then
    AVSPEECH_ATTENTION=reference "$PY" -m avspeech.cli pretrain --out "$RES/pretrain_run" --model tiny --steps 2 \
      --clips 1 --clusters 5 "${data[@]}"
  else
    AVSPEECH_ATTENTION=triton "$PY" -m avspeech.cli pretrain --out "$RES/pretrain_run" --model base --steps 50 \
      --clips 8 "${data[@]}"
  fi
}

run_separate() {  # the model on made-up tracks (CPU and GPU side by side; no media package needed), then the
                  # whole command on a video where the media packages are there
  if [ "$DRY" = 1 ]; then
    "$PY" benchmarks/bench_separate.py --model-only --seconds 2 --devices cpu --out "$RES/separate" || exit 1
    ( need_media decord soundfile av mediapipe ) || exit 0  # the whole command needs them (the line says which)
    AVSPEECH_ATTENTION=reference "$PY" benchmarks/bench_separate.py --seconds 2 --audio-clips 1 --work "$RES/separate_work" \
      --out "$RES/separate"
  else
    "$PY" benchmarks/bench_separate.py --model-only --seconds 60 --devices cuda cpu --out "$RES/separate" || exit 1
    ( need_media decord soundfile av mediapipe ) || exit 0  # the model alone was timed
    AVSPEECH_ATTENTION=auto "$PY" benchmarks/bench_separate.py --seconds 60 --work "$RES/separate_work" \
      --out "$RES/separate"
  fi
}

export DRY RES PY PREP REPO SLUG ATT_MAIN
export -f need_media env_info run_tests run_warm run_attention run_attention_flex run_train_step run_pretrain run_separate
stage env 15 env_info
stage warm 40 run_warm
stage attention 150 run_attention
stage attention_flex 80 run_attention_flex
stage tests 100 run_tests
stage train_step 50 run_train_step
stage pretrain 45 run_pretrain
stage separate 35 run_separate

# summary.md: the stages, the attention tables, the other stages' last lines
{
  echo "# GPU session: $SLUG ($(date -u +%Y-%m-%dT%H:%MZ), $(( $(date +%s) - T_START )) s)"
  echo
  echo "Written by \`benchmarks/gpu_session.sh$([ "$DRY" = 1 ] && echo ' --dry-run')\`; logs in \`logs/\`."
  echo
  echo "| stage | status | seconds | limit |"
  echo "|---|---|---|---|"
  while IFS=$'\t' read -r n s t l; do echo "| $n | $s | $t | $l |"; done < "$STAGES"
  echo
  echo "## Environment"; echo; echo '```'; "$PY" - "$RES/logs/env.log" <<'EOF'
import sys
import os
lines = open(sys.argv[1]).read().splitlines() if os.path.isfile(sys.argv[1]) else []
print("\n".join(l for l in lines if not l.startswith(("|", "+")) and l.strip())[-1500:])
EOF
  echo '```'; echo
  echo "## Tests"; echo; echo '```'; tail -n 15 "$RES/logs/tests.log" 2>/dev/null; echo '```'; echo
  echo "## Attention"; echo
  if [ -f "$RES/cross_attention_shapes.md" ]; then sed 1d "$RES/cross_attention_shapes.md"; else echo "(no table)"; fi
  echo
  for s in train_step pretrain separate; do
    echo "## $s"; echo; echo '```'; tail -n 8 "$RES/logs/$s.log" 2>/dev/null; echo '```'; echo
  done
} > "$RES/summary.md"
echo "wrote $RES/summary.md"

if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then  # the device tool brings back at most 8 files from $OUT
  cp "$RES/summary.md" "$OUT/summary.md"
  [ -f "$RES/cross_attention_shapes.csv" ] && cp "$RES/cross_attention_shapes.csv" "$OUT/"
  [ -f "$RES/tile_choice.csv" ] && cp "$RES/tile_choice.csv" "$OUT/"
  tar -czf "$OUT/results.tar.gz" -C "$(dirname "$RES")" "$(basename "$RES")"
  echo "copied summary.md, the attention CSVs and results.tar.gz to $OUT"
fi
failed=$(awk -F'\t' '$2 !~ /^(ok|skipped)/' "$STAGES" | wc -l)
exit $(( failed > 0 ))
