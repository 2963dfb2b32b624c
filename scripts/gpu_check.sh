#!/usr/bin/env bash
# The GPU check of the training-speed issue, prepared for a development session that is lent a GPU machine (the
# `device` tool: one machine, about 15 minutes of device time, a Python 3.12 image with torch, lightning,
# safetensors and huggingface-hub but not soundfile or soxr, and no network). Two halves:
#
#   bash scripts/gpu_check.sh prepare     here, once: the wheels the image lacks in .whl/, the training data as
#                                         FLAC in .gpudata/ (44 MB of WAV would not fit the 64 MiB that travels)
#   device run: command "bash scripts/gpu_check.sh run", carry [".whl", ".gpudata"], timeout_s 590
#
# The run half installs the wheels, writes the FLAC back as data/drums_fluidr3 (the same names and samples, so the
# same train/validation split as here), prints the GPU, and times the real training CLI on the two shipped
# end-to-end configs in three precisions at batch 64 with 8 data workers (`python -m vaedemo.bench --train`); its
# table and JSON come back under $OUT. The image's start-up imports take about a minute a process, and the bench
# starts one process per row: six rows should fit the call (about 75 s each); should they not, RUNS, VAE_STEPS,
# ADV_STEPS, BATCH and WORKERS are environment variables, and DEVICE=cpu runs the same half here (tried so: 53 s at
# batch 4, four and two steps). Anyone with a GPU of their own runs the bench command alone.
set -euo pipefail
cd "$(dirname "$0")/.."

prepare() {
    local py=${PYTHON:-.venv/bin/python}
    rm -rf .whl .gpudata
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl soundfile==0.14.0 soxr==1.1.0 cffi==2.1.1 pycparser==3.12
    if [ ! -f data/drums_fluidr3/manifest.csv ]; then
        echo "data/drums_fluidr3 is not rendered: python -m vaedemo.data.soundfont --soundfont" \
            "/usr/share/sounds/sf2/FluidR3_GM.sf2 --kind drums --out data/drums_fluidr3" >&2
        exit 1
    fi
    transcode "$py" data/drums_fluidr3 .gpudata/drums_fluidr3 wav flac
    du -sh .whl .gpudata
}

transcode() {  # PYTHON SRC DST OLD NEW: each SRC/**/*.OLD as DST/**/*.NEW, 16-bit samples unchanged; the manifest
    "$1" - "$2" "$3" "$4" "$5" <<'EOF'
import shutil
import sys
from pathlib import Path

import soundfile as sf

src, dst, old, new = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
for path in sorted(src.rglob(f"*.{old}")):
    x, sr = sf.read(path, dtype="int16", always_2d=True)
    out = dst / path.relative_to(src).with_suffix(f".{new}")
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(out, x, sr, subtype="PCM_16")
shutil.copy(src / "manifest.csv", dst / "manifest.csv")
print(f"{dst}: {sum(1 for _ in dst.rglob(f'*.{new}'))} files")
EOF
}

run() {
    local out=${OUT:-gpu_check_out}
    mkdir -p "$out"
    if [ -d .whl ]; then  # (an image that has soundfile and soxr needs none)
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    fi
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"; } | tee "$out/gpu.txt"
    python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" \
        | tee -a "$out/gpu.txt"
    transcode python3 .gpudata/drums_fluidr3 data/drums_fluidr3 flac wav  # the names the configs and split know
    python3 -m vaedemo.bench --train --device "${DEVICE:-cuda}" --precision 32-true --precision bf16-mixed \
        --precision 16-mixed --batch "${BATCH:-64}" --workers "${WORKERS:-8}" --runs "${RUNS:-1}" \
        --vae-steps "${VAE_STEPS:-60}" --adv-steps "${ADV_STEPS:-20}" --json "$out/gpu_bench.json" 2>&1 \
        | tee "$out/gpu_bench.md"
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: bash scripts/gpu_check.sh prepare|run" >&2; exit 2 ;;
esac
