"""What every command line of vaedemo shares: a user's mistake is printed as one line, without a traceback."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import VaedemoError

USER_ERROR = 2  # exit status for everything a user can get wrong (bad config, audio, bundle, data)


def user_errors(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a ``main(argv) -> int``: a :class:`VaedemoError` prints ``error: <sentence>`` and exits non-zero."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except VaedemoError as e:
            print(f"error: {own_sentence(e)}", file=sys.stderr)
            return USER_ERROR

    return wrapper


def own_sentence(error: VaedemoError) -> str:
    """The error's sentence. One raised in a DataLoader worker (train.num_workers > 0: a data folder replaced during
    training) reaches the main process raised again by torch, the worker's whole traceback in its message ("Caught
    DataError in DataLoader worker process 0. Original Traceback ..."); the sentence is its last line's tail."""
    text = str(error)
    if not (text.startswith("Caught ") and "DataLoader worker" in text.partition("\n")[0]):
        return text
    marker = f"{type(error).__module__}.{type(error).__qualname__}: "  # how the traceback's last line names it
    at = text.rfind(marker)
    return text[at + len(marker) :].strip() if at >= 0 else text


def checked_device(name: str) -> str:
    """A ``--device`` value as a torch device name: "auto" is cuda where torch sees a GPU, else cpu. A name torch does
    not know, or a GPU this torch cannot use, is one sentence here rather than a traceback at the first tensor."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise VaedemoError(f"--device must name a torch device such as cpu, cuda or cuda:1, got {name!r}.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VaedemoError(f"--device {name} needs a GPU that this torch can use, and it sees none: use --device cpu.")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise VaedemoError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s), numbered from 0.")
    return name


def emit_report(text: str, data, out: str | None, json_path: str | None) -> None:
    """Print a markdown report; also write it to ``out`` and the numbers behind it to ``json_path`` when given."""
    print(text)
    if out:
        Path(out).write_text(text)
    if json_path:
        Path(json_path).write_text(json.dumps(data, indent=2))
