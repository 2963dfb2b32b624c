# syntax=docker/dockerfile:1
# The vaedemo browser demo with the shipped checkpoints, served on 0.0.0.0:7860 (CPU image by default).
#
#   docker build -t vaedemo .
#   docker run --rm -p 7860:7860 vaedemo                      # then open http://localhost:7860
#   docker run --rm -p 7860:7860 vaedemo python app.py --checkpoint hf://org/repo   # another model (needs network)
#   docker run --rm -p 7860:7860 -e VAEDEMO_AUTH=ann:secret vaedemo   # ask for a login (see "Running it for others")
#
# app.py runs as PID 1 and handles SIGTERM itself: `docker stop` removes its temporary files and stops it in a second
# or two (a Python PID 1 without a handler ignores SIGTERM until Docker kills it 10 s later, leaving files behind).
#
# CUDA variant: the same image with torch's CUDA wheels (they bundle the CUDA libraries; the host needs the NVIDIA
# driver and the NVIDIA container toolkit):
#
#   docker build -t vaedemo:cuda --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
#   docker run --rm --gpus all -p 7860:7860 vaedemo:cuda
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False

# ffmpeg decodes what libsndfile cannot (m4a, webm from browser microphones, ...)
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin vaedemo
WORKDIR /app

# torch first, from the wheel index of the variant (CPU or CUDA); requirements.txt's torch==X pin then matches it
COPY requirements.txt ./
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
    && pip install -r requirements.txt

COPY --chown=vaedemo:vaedemo vaedemo/ vaedemo/
COPY --chown=vaedemo:vaedemo examples/ examples/
COPY --chown=vaedemo:vaedemo checkpoints/ checkpoints/
COPY --chown=vaedemo:vaedemo app.py ./
# onnxruntime-web for the Live tab's "in this browser" mode (pinned, checksummed; the app itself never downloads)
RUN python -m vaedemo.demo.browser_runtime

USER vaedemo
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)" || exit 1
STOPSIGNAL SIGTERM
CMD ["python", "app.py"]
