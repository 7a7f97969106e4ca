#!/usr/bin/env bash
# The mini FLUX's whole training chain on one GPU: (an autoencoder, text encoders,) a teacher, guidance distillation,
# mini-bench.
#
#   bash benchmarks/gpu_train_mini.sh [OUT]          # OUT defaults to out/mini_gpu
#
# Into OUT it writes what the CPU chain of benchmarks/mini_training.md writes:
#   OUT/ae/               only if MINI_AUTOENCODER_STEPS > 0: the autoencoder (weights, config with the measured
#                         normalisation, autoencoder_training.json, its checkpoint); else data/mini_autoencoder is used
#   OUT/text/             only if MINI_TEXT_STEPS > 0: contrastively pretrained text encoders (mini-text), which the
#                         teacher then trains on, frozen; else the text encoders keep their random initial weights
#   OUT/mini/             the distilled mini FLUX (a save_pretrained folder with known_inputs.json and training.json),
#                         its checkpoint.pt and its classifier-free-guidance teacher in OUT/mini/teacher
#   OUT/mini_bench.json   mini-bench on the test seeds (the counts of MINI_BENCH)
#   OUT/log.txt           everything the commands print, and the seconds each stage took
# A rerun with the same OUT resumes every stage from its checkpoint (mini-bench runs again).
#
# Settings, from the environment (the defaults aim at one GPU and at most 8 minutes of compute; they were chosen
# before any GPU run, see benchmarks/mini_training.md):
#   MINI_DEVICE               cuda (cpu runs the same chain without a GPU, as the tests do with tiny sizes)
#   MINI_AUTOENCODER_STEPS    0: no autoencoder training, use data/mini_autoencoder
#   MINI_TEXT_STEPS           0: random frozen text encoders, as the shipped model (issue 32's probe B: mini-text)
#   MINI_TEACHER_STEPS        6000
#   MINI_DISTILL_STEPS        600
#   MINI_EVAL_EVERY           1000 (held-out rows of the training curves)
#   MINI_BENCH                "--captions 200 --reconstructions 20 --edits 40" (mini-bench's own defaults,
#                             200 / 50 / 200, take longer than the rest of the chain: run them afterwards)
#   MINI_AUTOENCODER_OPTIONS, MINI_TEXT_OPTIONS, MINI_TRAIN_OPTIONS   more options for mini-autoencoder / mini-text /
#                             mini-train; they come last, so they override the ones above and the --device cuda
#                             defaults (mini-train --help)
#   PYTHON                    .venv/bin/python if there is one, else python3
set -euo pipefail

mkdir -p "${1:-out/mini_gpu}"
OUT=$(cd "${1:-out/mini_gpu}" && pwd)
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
DEVICE=${MINI_DEVICE:-cuda}
AUTOENCODER_STEPS=${MINI_AUTOENCODER_STEPS:-0}
TEXT_STEPS=${MINI_TEXT_STEPS:-0}
EVAL_EVERY=${MINI_EVAL_EVERY:-1000}
exec > >(tee -a "$OUT/log.txt") 2>&1

stage() {  # stage NAME COMMAND...: run it, then print the seconds it took
    local name=$1 start=$SECONDS
    shift
    echo "== $name: $*"
    "$@"
    echo "== $name took $((SECONDS - start)) s"
}

echo "== $(date -u +%FT%TZ) on $(hostname): device $DEVICE, python $PYTHON, commit $(git rev-parse --short HEAD 2>/dev/null || echo none)"
if [ "$DEVICE" != cpu ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
total=$SECONDS
AUTOENCODER=data/mini_autoencoder
if [ "$AUTOENCODER_STEPS" -gt 0 ]; then
    AUTOENCODER=$OUT/ae
    # shellcheck disable=SC2086  # the options are words
    stage autoencoder "$PYTHON" -m fireflow_edu mini-autoencoder --device "$DEVICE" --steps "$AUTOENCODER_STEPS" \
        --eval-every "$EVAL_EVERY" ${MINI_AUTOENCODER_OPTIONS:-} --out "$AUTOENCODER"
fi
TEXT=()
if [ "$TEXT_STEPS" -gt 0 ]; then
    TEXT=(--text-encoders "$OUT/text")
    # shellcheck disable=SC2086
    stage text "$PYTHON" -m fireflow_edu mini-text --device "$DEVICE" --steps "$TEXT_STEPS" ${MINI_TEXT_OPTIONS:-} \
        --out "$OUT/text"
fi
# shellcheck disable=SC2086
stage train "$PYTHON" -m fireflow_edu mini-train --autoencoder "$AUTOENCODER" "${TEXT[@]}" --device "$DEVICE" \
    --teacher-steps "${MINI_TEACHER_STEPS:-6000}" --distill-steps "${MINI_DISTILL_STEPS:-600}" \
    --eval-every "$EVAL_EVERY" ${MINI_TRAIN_OPTIONS:-} --out "$OUT/mini"
# shellcheck disable=SC2086
stage bench "$PYTHON" -m fireflow_edu mini-bench --model "$OUT/mini" --device "$DEVICE" \
    ${MINI_BENCH:---captions 200 --reconstructions 20 --edits 40} --out "$OUT/mini_bench.json" --overwrite
echo "== the whole chain took $((SECONDS - total)) s"
