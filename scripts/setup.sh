#!/usr/bin/env bash
# Installs what vaedemo needs on a fresh Debian machine: system packages (when run as root with apt), a virtual
# environment in .venv and the Python requirements. `--dev` adds the test requirements.
#   bash scripts/setup.sh          # to run the app and the CLIs
#   bash scripts/setup.sh --dev    # to run the tests too
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[ "${1:-}" = "--dev" ] && dev=1

# python3-venv: Debian's python3 only suggests it, and without it `python3 -m venv` fails; fluidsynth + soundfonts
# render training/evaluation data, ffmpeg decodes m4a/webm, chromium runs the browser tests
packages="python3-venv fluidsynth fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont ffmpeg opus-tools"
[ $dev = 1 ] && packages="$packages chromium"
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  missing=""
  for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    echo "[setup] apt-get install$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
else
  echo "[setup] not root or no apt-get: install these system packages yourself if missing: $packages"
fi

python3 -m venv .venv
# torch first, its CPU build: on Linux, PyPI's torch is the CUDA build (GBs of CUDA packages); the pin then matches it.
# A machine without access to that index (a local wheel mirror) falls back to whatever pip is configured with.
torch_pin="$(grep -E '^torch==' requirements.txt)"
.venv/bin/python -m pip install -q --timeout 15 --retries 1 --index-url https://download.pytorch.org/whl/cpu "$torch_pin" \
  2>/dev/null || .venv/bin/python -m pip install -q "$torch_pin"  # (its warnings: an unreachable index, retried)
# the package itself, editable (pyproject.toml; its dependencies are requirements.txt, dev adds requirements-dev.txt)
if [ $dev = 1 ]; then
  .venv/bin/python -m pip install -q -e ".[dev]"
else
  .venv/bin/python -m pip install -q -e .
fi
# onnxruntime-web for the Live tab's "in this browser" mode (a pinned, checksummed tarball; the app never downloads)
.venv/bin/python -m vaedemo.demo.browser_runtime || echo "[setup] without onnxruntime-web the Live tab cannot play in the browser"
echo "[setup] done: $(.venv/bin/python -c 'import torch, lightning, gradio; print("torch", torch.__version__, "lightning", lightning.__version__, "gradio", gradio.__version__)')"
