#!/usr/bin/env bash
# Everything a session lent a GPU machine (the `device` tool) has to do, in ONE call:
#
#   bash benchmarks/gpu_session.sh [BUDGET_S]        # default 540: the seconds this script may use
#
# A session has 15 device-minutes in all, a fresh machine takes a minute or two to start and none
# starts with under 4 minutes left, so there is one try: call `run` once with this command,
# carry [".whl"] and timeout_s 600, then `give_back`. Stages, most valuable first, each capped by
# what is left of the budget so that a slow or hung stage cannot cost the ones after it:
#
#   1. build with CUDA for the visible GPU's architecture (skipped when tsvq._C already loads with
#      CUDA kernels)                                                -> build.log, info.json
#   2. the CUDA tests (pytest -m cuda: every device-grid case and GPU-only test)  -> tests-cuda.log
#   3. `benchmarks/targets.py --device cuda` (the speed targets, one table)     -> summary.md;
#      the benchmark files on CUDA (-k cuda) in capped parts (PART_CAPS), merged -> <date>-<gpu>.json,
#      bench.log, summary.md (benchmarks/summarize.py); the JSON is what to commit under benchmarks/results/
#   4. whether errors raised in C++ kernels reach Python (benchmarks/check_cpp_errors.py) -> stages.txt
#   5. the rest of the suite (CPU cases, against this machine's torch)           -> tests-rest.log
#
# Output goes to $OUT (the device tool's folder; default benchmarks/results/gpu-session), at most
# 8 files (all the tool returns). Exit status: 0 when every stage that ran passed, 1 otherwise;
# stages that did not fit the budget are named on stdout and in $OUT/stages.txt.
#
# Packages the machine lacks travel as wheels in .whl/ (git-ignored; name it in `carry`), made here
# for the machine's Python 3.12:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl \
#     vector-quantize-pytorch==1.32.0 einx==0.4.3 loguru frozendict torch-einops-utils aeon==1.6.0 Deprecated==1.3.1
# (vector-quantize-pytorch: the bench_vq baseline and its equivalence tests; aeon: tsvq.data).
# ../shared (UCR data, FCN weights) does not travel: the tests that read it skip unless
# TSVQ_SHARED_DIR points at a carried copy.
#
# Every built CUDA kernel runs (TSVQ_CUDA_KERNELS=all): the timings here decide which kernels the
# ops use by default on CUDA (tsvq/ops/_cuda_defaults.py, docs/kernels.md); the benchmarks' torch
# baselines are the library paths the ops take otherwise.
#
# On a machine without a GPU the same stages run on the CPU (stage 2 then runs nothing), which
# is how the script itself is checked: `bash benchmarks/gpu_session.sh 120` must end in time.
set -uo pipefail
BUDGET=${1:-540}
[[ "$BUDGET" =~ ^[0-9]+$ ]] || { echo "usage: $0 [BUDGET_S]" >&2; exit 2; }
DEADLINE=$((SECONDS + BUDGET))
OUT=${OUT:-benchmarks/results/gpu-session}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=$(command -v "${PYTHON:-python3}") && PY=$(realpath -s "$PY") || { echo "no python: ${PYTHON:-python3}" >&2; exit 2; }
export PYTHONUNBUFFERED=1
export TSVQ_CUDA_KERNELS=all
: > "$OUT/stages.txt"
rc=0

left() { echo $((DEADLINE - SECONDS)); }
stage() {  # stage NAME STATUS [DETAIL]: one line in stages.txt and on stdout
  echo "$1: $2${3:+ ($3)} at $((SECONDS))s" | tee -a "$OUT/stages.txt"
}
capped() {  # capped CAP_S CMD...: run CMD for at most min(CAP_S, time left - 5 s)
  local cap=$1; shift
  local t=$(( $(left) - 5 < cap ? $(left) - 5 : cap ))
  (( t > 0 )) || return 124
  timeout --kill-after=5 "$t" "$@"
}

if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { stage wheels failed; exit 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

built() {  # tsvq._C loads, with CUDA kernels when a GPU is visible
  "$PY" -c "import sys, torch, tsvq; i = tsvq.info()
sys.exit(0 if i['extension'] and (i['cuda_kernels'] or not torch.cuda.is_available()) else 1)" 2> /dev/null
}

# 1. Build. Editable, so that tests run from this tree import the built extension (a plain
# `pip install .` leaves ./tsvq without _C first on sys.path). Only the visible GPU's architecture.
if ! built; then
  ARCH=$("$PY" -c "import torch; c = torch.cuda.get_device_capability() if torch.cuda.is_available() else None; print(f'{c[0]}.{c[1]}' if c else '')")
  echo "== build (TORCH_CUDA_ARCH_LIST=${ARCH:-default}) -> $OUT/build.log"
  if ! ( if [ -n "$ARCH" ]; then export TSVQ_FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=$ARCH; fi
         export MAX_JOBS; MAX_JOBS=$(nproc)
         capped 330 "$PY" -m pip install --no-deps --no-build-isolation -v -e . ) > "$OUT/build.log" 2>&1 \
      || ! built; then
    tail -40 "$OUT/build.log"; stage build failed; exit 1
  fi
  stage build ok
else
  stage build "already built"
fi
{ "$PY" -c "import json, platform, tsvq; i = tsvq.info(); i['python'] = platform.python_version(); print(json.dumps(i, indent=1))"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2> /dev/null; } | tee "$OUT/info.json"

tests() {  # tests NAME CAP_S PYTEST_ARGS...
  local name=$1 cap=$2; shift 2
  if (( $(left) < 20 )); then stage "tests ($name)" "not run" "out of budget"; rc=1; return; fi
  echo "== tests ($name) -> $OUT/tests-$name.log"
  TSVQ_REQUIRE_EXTENSION=1 capped "$cap" "$PY" -m pytest -q -rfEs -p no:cacheprovider --durations=10 tests "$@" \
    > "$OUT/tests-$name.log" 2>&1
  local r=$?
  tail -3 "$OUT/tests-$name.log"
  case $r in
    0|5) stage "tests ($name)" ok "$(tail -1 "$OUT/tests-$name.log")" ;;
    124|137) stage "tests ($name)" "cut off" "budget"; rc=1 ;;
    *) stage "tests ($name)" failed "pytest exit $r"; rc=1 ;;
  esac
}

# 2. CUDA tests.
tests cuda 150 -m cuda

# 3a. The speed targets in one table (benchmarks/targets.py), the first lines of summary.md.
DEV=cpu; "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" && DEV=cuda
if (( $(left) < 120 )); then stage "targets" "not run" "out of budget"; rc=1
else
  echo "== benchmarks/targets.py --device $DEV -> $OUT/summary.md"
  { echo "## benchmarks/targets.py --device $DEV"; echo; } > "$OUT/summary.md"
  capped 120 "$PY" benchmarks/targets.py --device "$DEV" --rounds 20 >> "$OUT/summary.md" 2> "$OUT/bench.log"
  r=$?; tail -14 "$OUT/summary.md"
  case $r in 0) stage "targets" ok ;; 124|137) stage "targets" "cut off" "budget"; rc=1 ;;
             *) stage "targets" failed "exit $r"; tail -5 "$OUT/bench.log"; rc=1 ;; esac
fi

# 3b. Benchmarks: one pytest run per part, each capped (PART_CAPS, seconds, and the time left) so
# that a slow part cannot take the time of those after it; pytest-benchmark writes its JSON only at
# the end of a run, so a part cut off loses its own rows and no other. Most important first: the
# kernels not yet measured on a GPU (the fused STFT kernels, the Barlow Twins op's kernels), the
# quantiser, the whole training step, the EMA update's kernels, the VICReg / VIbCReg losses, then
# the rest of the STFT grid. On a GPU only the CUDA cases (CPU
# numbers come from the CPU machines).
GPU=$("$PY" -c "import torch; n = torch.cuda.get_device_name().split() if torch.cuda.is_available() else ['cpu']
print(n[min(1, len(n) - 1)].lower())")  # 'NVIDIA H200' -> h200
JSON="$OUT/$(date +%F)-$GPU.json"
PARTS=$(mktemp -d)
PART_CAPS=(  # name file cap_s -k expression ("" for the whole file)
  "stft-fused-ab bench_stft 70 test_fused_kernels"
  "barlow-twins bench_barlow_twins 50 "
  "vq bench_vq 90 not sampling_diversity and not topk and not beam"
  "vq-topk-beam bench_vq 40 topk or beam"
  "model-step bench_model_step 60 "
  "ema bench_ema_codebook_update 30 "
  "ssl-losses bench_ssl_losses 30 "
  "stft-rest bench_stft 130 not test_fused_kernels"
)
for part in "${PART_CAPS[@]}"; do
  read -r name f cap expr <<< "$part"
  [ "$GPU" != cpu ] && expr="cuda${expr:+ and ($expr)}"
  if (( $(left) < 40 )); then stage "$name" "not run" "out of budget"; rc=1; continue; fi
  echo "== $name: $f.py${expr:+ -k '$expr'}"
  (cd benchmarks && capped "$cap" "$PY" -m pytest -q -p no:cacheprovider "$f.py" ${expr:+-k "$expr"} \
    --benchmark-json="$PARTS/$name.json" > "$PARTS/$name.log" 2>&1)
  r=$?
  tail -2 "$PARTS/$name.log"
  cat "$PARTS/$name.log" >> "$OUT/bench.log"
  case $r in
    0|5) stage "$name" ok ;;
    124|137) stage "$name" "cut off" "cap ${cap}s or budget"; rc=1 ;;
    *) stage "$name" failed "pytest exit $r"; rc=1 ;;
  esac
done
# Merge the per-file JSON (a file that cannot be read is named and skipped, never silently: the
# first GPU session lost its JSON here and kept only the tables in bench.log).
"$PY" - "$JSON" "$PARTS"/*.json <<'EOF' 2>&1 | tee -a "$OUT/stages.txt"
import json, sys
out, merged = sys.argv[1], None
for p in sys.argv[2:]:
    try:
        part = json.load(open(p))
    except (OSError, ValueError) as e:
        print(f"merge: skipped {p}: {e}")
        continue
    if merged is None:
        merged = part
    else:
        merged["benchmarks"] += part["benchmarks"]
if merged is None:
    print("merge: no benchmark JSON to merge")
else:
    json.dump(merged, open(out, "w"), indent=1)
    print(f"merge: {len(merged['benchmarks'])} benchmarks -> {out}")
EOF
[ -f "$JSON" ] && { echo; echo "## pytest benchmarks/ (parts: PART_CAPS; -k cuda on a GPU)"; echo; "$PY" benchmarks/summarize.py "$JSON"; } \
  | tee -a "$OUT/summary.md"
rm -rf "$PARTS"

# 4. Do errors raised in C++ kernels reach Python here? (The first GPU session's rest-of-suite run
# died with a segmentation fault at the first one; one line per case into stages.txt.)
if (( $(left) < 60 )); then stage "cpp errors" "not run" "out of budget"
else
  echo "== C++ kernel errors -> stages.txt"
  capped 150 "$PY" benchmarks/check_cpp_errors.py 2>&1 | tee -a "$OUT/stages.txt"
  [ "${PIPESTATUS[0]}" = 0 ] && stage "cpp errors" ok || { stage "cpp errors" failed; rc=1; }
fi

# 5. The rest of the suite, on 8 workers when pytest-xdist is there (a crashing test then fails
# alone instead of ending the run).
XDIST=(); "$PY" -c "import xdist" 2> /dev/null && XDIST=(-n 8)
tests rest 240 -m "not cuda" "${XDIST[@]}"

echo "== stages"; cat "$OUT/stages.txt"
exit "$rc"
