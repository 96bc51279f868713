#!/usr/bin/env bash
# The device check: on a machine with an NVIDIA GPU (CUDA driver, nvcc, python3 with numpy and networkx),
# run tiny through `q35c run --target <the GPU>` (numerics against the numpy reference, measured vs predicted
# per kernel) and benchmarks/gpu_kernels.py (tiny, tiny widened and checked likewise, and llama-2-7b's decode
# step; then, time allowing, its prefill on 4 decoder layers), in about a minute and a half (at most 9 minutes).
#
#   bash scripts/device_check.sh --prepare    # here, once: copy the pure-Python packages q35c needs beyond a
#                                             # stock scientific Python (xdsl, lark, immutabledict, ordered_set)
#                                             # from .venv into out/device-site (about 4 MB), to carry along
#   bash scripts/device_check.sh              # there: results under $OUT (or out/device-check)
#
# Python: .venv/bin/python when it works there; else python3 with out/device-site on PYTHONPATH and q35c taken
# from this tree as it is (no install: a sitecustomize adds the tree's dialects/, passes/ and targets/ as the
# q35c.dialects, .passes and .targets packages, as the editable install maps them). Set LAYERS=N to cut the
# llama case to N decoder layers, Q35C_CUDA_DEBUG=1 for a line per driver step and kernel, PYTHON=... to use
# that interpreter (with the sitecustomize) rather than .venv.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
SITE="$ROOT/out/device-site"

if [ "${1:-}" = "--prepare" ]; then
  from=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || exit 1
  rm -rf "$SITE" && mkdir -p "$SITE"
  for package in xdsl lark immutabledict ordered_set; do
    cp -r "$from/$package" "$SITE/" || exit 1
  done
  find "$SITE" -name __pycache__ -prune -exec rm -rf {} +
  du -sh "$SITE"
  echo "carry out/device-site along with the tree, then run: bash scripts/device_check.sh"
  exit 0
fi

RESULTS="${OUT:-$ROOT/out/device-check}"
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1
if [ -z "${PYTHON:-}" ] && .venv/bin/python -c 'import q35c.dialects, xdsl, numpy' 2>/dev/null; then
  PY=.venv/bin/python
else
  PY="${PYTHON:-python3}"
  BOOT=$(mktemp -d)
  cat >"$BOOT/sitecustomize.py" <<EOF
import sys
sys.path.insert(0, "$ROOT")
import q35c
q35c.__path__.append("$ROOT")
EOF
  export PYTHONPATH="$BOOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
echo "device_check: $($PY --version 2>&1) ($PY); $(command -v nvcc || echo 'no nvcc on PATH')" | tee "$RESULTS/check.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$RESULTS/check.log"
if ! $PY -c 'import q35c.dialects, xdsl, lark, numpy, networkx' 2>>"$RESULTS/check.log"; then
  echo "device_check: q35c cannot be imported (see $RESULTS/check.log; run --prepare here and carry out/device-site)"
  exit 2
fi

status=0
target=$($PY benchmarks/gpu_kernels.py --print-target 2>>"$RESULTS/check.log") || target=h100-sxm
echo "== q35c run tiny --target $target" | tee -a "$RESULTS/check.log"
Q35C_CUDA_DEBUG=1 timeout 200 $PY -c 'import sys; from q35c.cli.main import main; sys.exit(main(sys.argv[1:]))' \
  run tiny --target "$target" --prompt 16 --gen 16 2>&1 | tee -a "$RESULTS/check.log"
code=${PIPESTATUS[0]}
echo "q35c run exit status: $code" | tee -a "$RESULTS/check.log"
[ "$code" = 0 ] || status=1

echo "== benchmarks/gpu_kernels.py" | tee -a "$RESULTS/check.log"
timeout 330 $PY benchmarks/gpu_kernels.py --target "$target" ${LAYERS:+--layers "$LAYERS"} \
  --json "$RESULTS/gpu_kernels.json" 2>&1 | tee -a "$RESULTS/check.log"
code=${PIPESTATUS[0]}
echo "gpu_kernels exit status: $code" | tee -a "$RESULTS/check.log"
[ "$code" = 0 ] || status=1

# Time left (the whole check stays under 9 minutes): the llama case's prefill on 4 decoder layers.
left=$((520 - SECONDS))
if [ "$left" -gt 90 ]; then
  echo "== benchmarks/gpu_kernels.py, prefill (4 layers, ${left} s left)" | tee -a "$RESULTS/check.log"
  timeout "$left" $PY benchmarks/gpu_kernels.py --target "$target" --skip-tiny --layers 4 \
    --llama-phases prefill --json "$RESULTS/gpu_kernels_prefill.json" 2>&1 | tee -a "$RESULTS/check.log"
  echo "gpu_kernels prefill exit status: ${PIPESTATUS[0]}" | tee -a "$RESULTS/check.log"
fi
exit "$status"
