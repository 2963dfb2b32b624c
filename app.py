"""The vaedemo browser demo: ``python app.py [--checkpoint PATH|hf://org/repo ...] [--host H] [--port P] [--share]
[--auth USER:PASSWORD ...]``.

The entry point only: parse the command line, build the page with :mod:`vaedemo.demo` (one module per tab, next to
its handlers; the stable API endpoints ``/reconstruct``, ``/sample`` and ``/interpolate``, see the README) and
launch it. The figures are in :mod:`vaedemo.plots`, the model math in :class:`vaedemo.inference.Engine`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import torch

from vaedemo.audio import MAX_SECONDS_DEFAULT
from vaedemo.cli import checked_device, user_errors
from vaedemo.demo import INVALID_PORT, create, launch
from vaedemo.demo.files import MAX_TEMP_MB, private_temp_files
from vaedemo.demo.guard import PER_CLIENT, check_file_size, parse_auth
from vaedemo.demo.page import check_listen_address
from vaedemo.errors import VaedemoError

# --threads beyond this is no speed-up, only waiting: --threads 100000 was "can't start new thread" after the models loaded
MAX_THREADS = 8 * (os.cpu_count() or 1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python app.py", description="The vaedemo browser demo.")
    add = ap.add_argument
    add("--checkpoint", action="append", default=[], help="bundle folder or hf://org/repo[@rev]; repeatable; the first "
        "is the default model (default: the bundles in checkpoints/, the one named in checkpoints/DEFAULT first)")
    add("--host", default=os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        help="default $GRADIO_SERVER_NAME or 127.0.0.1")
    add("--port", type=int, default=INVALID_PORT or os.environ.get("GRADIO_SERVER_PORT") or 7860,
        help="default $GRADIO_SERVER_PORT or 7860")
    add("--share", action="store_true", help="also serve through a public gradio.live link")
    add("--auth", action="append", default=[], metavar="USER:PASSWORD",
        help="ask for a login; repeatable; $VAEDEMO_AUTH adds more (pairs separated by commas or spaces)")
    add("--data", action="append", default=[], help="folder of audio for the latent map; repeatable")
    add("--max-seconds", type=float, default=30.0,
        help=f"longer inputs are trimmed, with a warning (default 30, at most {MAX_SECONDS_DEFAULT})")
    add("--max-file-size", default="50mb", help="largest upload, a number and a unit: kb, mb or gb (default 50mb)")
    add("--device", default="auto", help="cpu, cuda, ... (default: cuda when available)")
    add("--concurrency", type=int, default=2, help="requests computed at the same time, others wait (default 2)")
    add("--per-client", type=int, default=PER_CLIENT,
        help=f"requests one client (IP address) may have running or waiting (default {PER_CLIENT})")
    add("--max-temp-mb", type=float, default=MAX_TEMP_MB,
        help=f"temporary files (uploads, outputs) kept at most, oldest deleted first (default {MAX_TEMP_MB})")
    add("--threads", type=int, default=None,
        help=f"torch threads per request (default: cores / concurrency; at most 8 per core, {MAX_THREADS} here)")
    add("--no-browser-live", action="store_true",
        help="never send a model to the visitor's browser (the Live tab's 'Play live in this browser', which gives "
             "the causal model's weights to anyone who opens the page)")
    return ap.parse_args(argv)  # argparse applies type= to string defaults: a bad $GRADIO_SERVER_PORT is reported


def check_limits(a: argparse.Namespace) -> None:
    """The numeric settings, before the models load. Written so that NaN fails each test: with ``<= 0`` checks,
    --max-seconds inf or nan started and then failed every reconstruction, --max-temp-mb nan or inf raised in int()."""
    if not 0 < a.max_seconds <= MAX_SECONDS_DEFAULT:  # longer is more than the engine takes
        raise VaedemoError(f"--max-seconds must be above 0 and at most {MAX_SECONDS_DEFAULT} (the longest audio a "
                           f"model takes), got {a.max_seconds}.")  # fmt: skip
    if not 0 < a.max_temp_mb < math.inf:
        raise VaedemoError(f"--max-temp-mb must be a finite number of megabytes above 0, got {a.max_temp_mb}.")
    if a.concurrency < 1 or a.per_client < 1:
        raise VaedemoError("--concurrency and --per-client must be at least 1.")
    if a.threads is not None and not 1 <= a.threads <= MAX_THREADS:
        raise VaedemoError(f"--threads must be at least 1 and at most {MAX_THREADS} (8 per core), got {a.threads}.")


@user_errors
def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    auth = parse_auth(a.auth, os.environ.get("VAEDEMO_AUTH"))
    check_limits(a)
    missing = next((d for d in a.data if not Path(d).is_dir()), None)
    if missing is not None:
        raise VaedemoError(f"--data {missing} is not a folder (the latent map reads folders of audio).")
    device = checked_device(a.device)
    check_file_size(a.max_file_size)
    check_listen_address(a.host, a.port)  # before the models load, not Gradio's traceback after
    try:
        with private_temp_files():  # entered before the page is built (Gradio reads its cache folder then)
            demo = create(a.checkpoint, a.data, a.max_seconds, device, browser_live=not a.no_browser_live)
            # one request per group of cores: a multi-threaded op stalls badly when another request holds a core
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            torch.set_num_threads(a.threads or max(1, cores // a.concurrency))
            launch(demo, a.max_file_size, concurrency=a.concurrency, allowed=[Path(d) for d in a.data],
                   server_name=a.host, server_port=a.port, share=a.share, per_client=a.per_client,
                   max_temp_mb=a.max_temp_mb, auth=auth)  # returns when the server stops (Ctrl-C, SIGTERM)  # fmt: skip
    except KeyboardInterrupt:  # stopped while starting
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
