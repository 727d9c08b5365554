#!/usr/bin/env bash
# Train, probe (validation split) and export an embedded DDPM on the GPU machine in one call.
# Usage: bash benchmarks/gpu_train_embedded.sh MINUTES DATA OUT [more options of gpu_train_embedded.py run]
# DATA: the .npz written here by `python benchmarks/gpu_train_embedded.py pack --wheel`, carried with
# its folder (checkpoints/gpu_carry, which also holds the diffusers wheel the machine lacks).
set -euo pipefail
minutes=$1 data=$2 out=$3
shift 3
wheels=$(dirname "$data")/wheels
if ! python3 -c "import diffusers" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$wheels"/*.whl
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
mkdir -p "$out"
python3 benchmarks/gpu_train_embedded.py run --minutes "$minutes" --data "$data" --out "$out" "$@" 2>&1 | tee "$out/run.log"
