"""What keeps one user from spoiling the demo for the others: per-client limits on requests, inputs that Gradio
cannot read, and the optional login.

* :class:`Gate`: every handler that computes runs inside ``with state.gate(request):``. A client (an IP address as
  the server sees it) may have ``per_client`` requests running or waiting; one more is refused at once with one
  sentence, before it waits for anything. At most ``concurrency`` requests compute at the same time (the others wait
  in the gate, in threads), and at most ``max_waiting`` wait in all. The compute events are therefore registered with
  no Gradio concurrency limit: Gradio's queue hands them to the gate at once, so one client's burst cannot fill the
  queue that everyone shares (which is what Gradio's own queue, first come first served, lets happen).
* :func:`guard_inputs`: inputs Gradio itself cannot read (``'abc'`` for a number, a string for a file, too few
  inputs) fail before any handler runs; they get one sentence too, and no traceback in the log.
* :func:`parse_auth`: ``--auth user:password`` / ``$VAEDEMO_AUTH`` for ``launch(auth=...)``.
* :func:`quiet_unknown_sessions`: a stream request for a session the server does not know is one log line, not
  Gradio's 76-line traceback (anyone can send it, as often as they like).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
from collections import Counter

import gradio as gr
from gradio.utils import get_upload_folder, is_in_or_equal
from gradio_client import utils as client_utils

from vaedemo.errors import VaedemoError

from .common import as_text, log, shown

PER_CLIENT = 4
MAX_WAITING = 64
LIVE_STREAMS = 4  # Live-tab chunks computing at once (see Gate.configure)


def client_key(request: gr.Request | None) -> str:
    """Who is asking: the client's IP address as the server sees it (behind a proxy that uvicorn trusts, see
    ``FORWARDED_ALLOW_IPS``, the address the proxy forwards), else the session."""
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    if host:
        return f"ip:{host}"
    return f"session:{getattr(request, 'session_hash', None)}"


class Gate:
    """Per-client and server-wide limits on the requests that compute (see the module's docstring)."""

    def __init__(self, concurrency: int = 2, per_client: int = PER_CLIENT, max_waiting: int = MAX_WAITING):
        self._lock = threading.Lock()
        self._clients: Counter[str] = Counter()
        self._pools: dict[str, threading.BoundedSemaphore] = {}
        self.configure(concurrency, per_client, max_waiting)

    def configure(self, concurrency: int, per_client: int, max_waiting: int) -> None:
        """Set the limits (launch does, before the server starts)."""
        if concurrency < 1 or per_client < 1 or max_waiting < 0:
            raise VaedemoError(
                f"the request limits must be positive: concurrency {concurrency}, per client {per_client}, "
                f"waiting {max_waiting}."
            )
        with self._lock:
            self.concurrency, self.per_client, self.max_waiting = concurrency, per_client, max_waiting
            # live streams compute a few ms a chunk and cannot wait behind a reconstruction: a pool of their own
            self._pools = {"compute": threading.BoundedSemaphore(concurrency), "model-load": threading.BoundedSemaphore(1),
                           "live": threading.BoundedSemaphore(LIVE_STREAMS)}

    @property
    def capacity(self) -> int:
        """Requests the gate holds at most: computing plus waiting."""
        return self.concurrency + self.max_waiting

    def in_flight(self, key: str | None = None) -> int:
        with self._lock:
            return self._clients[key] if key else sum(self._clients.values())

    @contextlib.contextmanager
    def __call__(self, request: gr.Request | None, pool: str = "compute", first=None):
        """Admit a request (or refuse it with one sentence), then hold one of the pool's slots while it runs.
        ``first``: a lock to take before the slot, so that what waits on it waits outside the pool (a live
        session's chunks wait for each other: three of one session held three of the four live slots, idle)."""
        key = client_key(request)
        with self._lock:
            if self._clients[key] >= self.per_client:
                raise gr.Error(
                    f"You already have {self.per_client} requests running or waiting; wait for one of them to "
                    "finish, then try again.",
                    print_exception=False,
                )
            if sum(self._clients.values()) >= self.capacity:
                raise gr.Error("The server is busy with other requests; please try again in a minute.",
                               print_exception=False)  # fmt: skip
            self._clients[key] += 1
            slots = self._pools[pool]
        try:
            with first or contextlib.nullcontext(), slots:
                yield
        finally:
            with self._lock:
                self._clients[key] -= 1
                if self._clients[key] <= 0:
                    del self._clients[key]


def gated(gate: Gate, pool: str = "compute"):
    """Decorate a page event's function: it runs inside ``gate`` for the client that sent the event. (Gradio passes
    the request to a first parameter annotated ``gr.Request``; the function's own inputs follow it.)"""

    def wrap(fn):
        def handler(request: gr.Request, *args):
            with gate(request, pool):
                return fn(*args)

        handler.__name__, handler.__qualname__, handler.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
        return handler  # no functools.wraps: Gradio would read fn's signature (through __wrapped__) instead

    return wrap


# ---------------------------------------------------------------------------------------------------- inputs
def guard_inputs(demo: gr.Blocks) -> None:
    """Inputs that Gradio's own components cannot read fail with one sentence and no traceback in the log.

    Gradio reads (preprocesses) every input before a handler runs; when that fails (``'abc'`` for a slider, a string
    where a file should be, a value that is not among a dropdown's choices, too few inputs) it answers with a generic
    error or a message that echoes the whole input, and logs a traceback. ``Blocks.preprocess_data`` is where every
    event's inputs are read, so the demo's Blocks gets a wrapper around it."""
    read = demo.preprocess_data

    @functools.wraps(read)
    async def preprocess_data(block_fn, inputs, *args, **kwargs):
        address = web_address_input(block_fn, inputs)
        if address:  # Gradio would download it (any size) before any handler could look
            log.warning("refused a request to %s: a file input named a web address", block_fn.name)
            raise gr.Error(as_text(address), print_exception=False)
        try:
            return await read(block_fn, inputs, *args, **kwargs)
        except Exception as e:  # every failure to read an input is the request's
            log.warning("refused a request to %s: an input could not be read (%s)", block_fn.name, type(e).__name__)
            try:
                message = unreadable(block_fn, inputs)
            except Exception:  # a value odd enough to break the diagnosis too
                message = "An input of the request could not be read."
            raise gr.Error(as_text(message), print_exception=False) from None

    demo.preprocess_data = preprocess_data


def web_address_input(block_fn, inputs) -> str | None:
    """The sentence for a file input given as a web address (http://...), else None. Gradio's reading of a file
    input downloads such an address into its cache, whatever its size and before any handler runs: a stranger could
    make the server fetch anything public. The demo downloads nothing; files come through the upload route."""
    if not isinstance(inputs, list):
        return None
    for component, value in zip(block_fn.inputs, inputs):
        if getattr(component, "data_model", None) is None:
            continue
        if any(isinstance(p, str) and client_utils.is_http_url_like(p) for p in _file_paths(value)):
            label = shown(str(getattr(component, "label", None) or type(component).__name__.lower()))
            return (f"The input {label} is a web address, and this server downloads nothing: upload the file itself "
                    "(handle_file of a local file).")  # fmt: skip
    return None


def unreadable(block_fn, inputs: list) -> str:
    """The sentence for inputs Gradio could not read (never Gradio's own message, which may echo a whole input)."""
    wanted = block_fn.inputs
    if not isinstance(inputs, list) or len(inputs) < len(wanted):
        got = len(inputs) if isinstance(inputs, list) else 0
        return f"This endpoint takes {len(wanted)} inputs, the request sent {got}."
    for component, value in zip(wanted, inputs):
        label = shown(str(getattr(component, "label", None) or type(component).__name__.lower()))
        if getattr(component, "data_model", None) is not None:
            if not _readable(component, value) or not _uploaded(value):
                return f"The input {label} is not a file uploaded to this server (send it with handle_file)."
        elif not _readable(component, value):
            return f"The input {label} is not a value it accepts."
    return "An input of the request could not be read."


def _readable(component, value) -> bool:
    """Whether Gradio can read ``value`` for ``component`` (its data model, or its preprocess for plain values)."""
    try:
        model = getattr(component, "data_model", None)
        if model is None:
            component.preprocess(value)
        elif value is not None:
            model.model_validate(value, context={"validate_meta": True})
    except Exception:
        return False
    return True


def _uploaded(value) -> bool:
    """Whether the files of a file input's value are in Gradio's upload folder (where uploads land), as Gradio wants."""
    return all(isinstance(p, str) and is_in_or_equal(p, get_upload_folder()) for p in _file_paths(value))


def _file_paths(value) -> list:
    """The ``path`` of every file object (a dict with one) in a file input's value."""
    paths = []
    client_utils.traverse(value, lambda d: paths.append(d.get("path")) or d, client_utils.is_file_obj)
    return paths


def pass_through(component: gr.components.Component) -> gr.components.Component:
    """Hand the component's input value to the handler as it came (an API number input: the handler checks it and
    names it in its sentence; Gradio's own reading of ``'abc'`` or ``'1e400'`` fails with a generic error)."""
    component.preprocess = lambda payload: payload
    return component


# ---------------------------------------------------------------------------------------------------- login
_PAIR = re.compile(r"^([^:\s]+):(\S.*)$")


FILE_SIZE = re.compile(r"\s*([1-9]\d*)\s*(b|kb|mb|gb|tb)\s*", re.IGNORECASE)  # what Gradio's max_file_size takes


MAX_FILE_SIZE = "1tb"  # beyond any upload; 99999999999999999999gb overflowed the JSON Gradio sends the page (orjson's
# 64-bit integers), which Gradio then reported as "localhost is not accessible"


def file_size_bytes(size: str) -> int:
    """``--max-file-size`` in bytes, as Gradio reads it (each unit 1024 times the one before)."""
    check_file_size(size)
    return _bytes(size)


def _bytes(size: str) -> int:
    number, unit = FILE_SIZE.fullmatch(size).groups()
    return int(number) * 1024 ** ["b", "kb", "mb", "gb", "tb"].index(unit.lower())


def check_file_size(size: str) -> None:
    """``--max-file-size`` as Gradio reads it (a whole number and a unit) up to :data:`MAX_FILE_SIZE`, or one sentence
    saying what it takes."""
    if not FILE_SIZE.fullmatch(size):
        raise VaedemoError(f"--max-file-size must be a whole number and a unit (b, kb, mb, gb), such as 50mb; got {size!r}.")
    if _bytes(size) > _bytes(MAX_FILE_SIZE):
        raise VaedemoError(f"--max-file-size must be at most {MAX_FILE_SIZE}; got {size[:40]!r}.")


def parse_auth(pairs: list[str], env: str | None = None) -> list[tuple[str, str]]:
    """``user:password`` pairs from the command line, then from ``$VAEDEMO_AUTH`` (pairs separated by commas or
    whitespace; a password may hold ':' but no comma or space there). Refuses a malformed pair with one sentence that
    does not show the password."""
    entries = list(pairs) + [e for e in re.split(r"[,\s]+", env or "") if e]
    out = []
    for entry in entries:
        m = _PAIR.match(entry.strip())
        if not m:
            if ":" not in entry:  # the entry may be a password given alone: not shown
                raise VaedemoError("a login must be user:password with neither part empty, got one without a ':'.")
            user = shown(entry.split(":", 1)[0])
            raise VaedemoError(f"a login must be user:password with neither part empty, got one for user {user}.")
        out.append((m.group(1), m.group(2)))
    return out


# ---------------------------------------------------------------------------------------------------- the log
class _UnknownSessionTraceback(logging.Filter):
    """Gradio answers ``GET /gradio_api/queue/data?session_hash=<unknown>`` with a 404 inside an event stream that
    has already started, and uvicorn logs what Starlette then raises ("Caught handled exception, but response already
    started", from that 404) with its whole traceback. The client got its answer; the log gets one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        late_404 = getattr(getattr(exc, "__cause__", None), "status_code", None) == 404
        if isinstance(exc, RuntimeError) and late_404 and "response already started" in str(exc):
            record.msg, record.args = "a stream request for an unknown session (404)", ()
            record.exc_info = record.exc_text = None
        return True


def quiet_unknown_sessions() -> None:
    """Install the filter on uvicorn's error log (once)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _UnknownSessionTraceback) for f in logger.filters):
        logger.addFilter(_UnknownSessionTraceback())
