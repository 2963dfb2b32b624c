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
            print(f"error: {e}", file=sys.stderr)
            return USER_ERROR

    return wrapper


def emit_report(text: str, data, out: str | None, json_path: str | None) -> None:
    """Print a markdown report; also write it to ``out`` and the numbers behind it to ``json_path`` when given."""
    print(text)
    if out:
        Path(out).write_text(text)
    if json_path:
        Path(json_path).write_text(json.dumps(data, indent=2))
