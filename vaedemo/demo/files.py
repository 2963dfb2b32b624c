"""The demo's temporary files: one stored copy of each output, a bound on their total size, and cleanup at exit,
on SIGTERM and on SIGINT.

* Outputs are written inside Gradio's cache folder (``GRADIO_TEMP_DIR``). Gradio serves a file that is already
  there as it is (``Block.move_resource_to_block_cache`` copies only files from elsewhere), so each output is stored
  once.
* ``app.py`` gives each server a private cache folder (:func:`private_temp_files`): uploads, Gradio's own files
  and the outputs all live in it, :class:`TempFiles` bounds its total size (oldest files first) and it is removed
  when the server stops, whichever way it stops (exit, SIGTERM, SIGINT). In-process (tests, notebooks) the
  cache folder may be shared with other apps, and only the outputs folder is bounded and removed.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path

import gradio.routes
import gradio.screen_recording_utils
import numpy as np
import soundfile as sf
from gradio.utils import get_upload_folder

MB = 1024 * 1024
MAX_TEMP_MB = 500
MAX_TEMP_FILES = 5000  # files kept at most, oldest deleted first: every sweep walks them all, under a lock
# what a file costs besides its bytes: a block of its own, and Gradio's folder for each upload (80 000 uploads of one
# byte each passed a bound on bytes alone: 16 MB by size, 660 MB on disk, and every request walked them)
FILE_OVERHEAD_BYTES = 8192
GRACE_SECONDS = 3.0  # a file this young is kept whatever the bound: its request may not have fetched it yet
# an upload still arriving (Gradio writes it to a "tmp..." file at the top of its folder) may pause this long before
# it is cut off (vaedemo.demo.bodies): its file is kept that long after its last write
UPLOAD_PAUSE_SECONDS = 30.0
SWEEP_SECONDS = 10.0  # how often the bound is checked in the background (uploads arrive without any handler)
_OWNED: list[Path] = []  # private temporary folders of this process: removed at exit and on signals
_SERVED: weakref.WeakSet = weakref.WeakSet()  # pages launch() served: stopped without waiting on a signal


def served(demo) -> None:
    """Note a page whose server a signal should stop at once (launch calls this)."""
    _SERVED.add(demo)


@contextlib.contextmanager
def private_temp_files(grace: float = 5.0):
    """Serve from a private temporary folder, removed however the server stops: ``with private_temp_files(): create
    (...); launch(...)``. Yields the folder.

    The folder is made inside the one ``$GRADIO_TEMP_DIR`` names (or the system's temporary folder) and made Gradio's
    cache folder (``GRADIO_TEMP_DIR``, which Gradio reads when it builds a page and starts a server: enter this
    first). It is removed when the block ends, at exit, and at once on SIGTERM (docker stop, systemd) or SIGINT
    (Ctrl-C); a signal then stops the server as Ctrl-C does, and if it has not stopped ``grace`` seconds later the
    process exits anyway. (By default SIGTERM kills Python without running any exit handler, and a Python process
    that is PID 1 in a container ignores it.) Enter it from the main thread; the environment variable and the
    signal handlers are restored afterwards."""
    base = Path(os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="vaedemo-", dir=base)).resolve()
    before_env = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    # two Gradio modules read the variable when imported, for files of features the demo does not use (screen
    # recordings, an empty "vibe_edit_history" folder made at launch): point them at the folder too
    modules = [m for m in (gradio.routes, gradio.screen_recording_utils) if hasattr(m, "DEFAULT_TEMP_DIR")]
    before_modules = {m: m.DEFAULT_TEMP_DIR for m in modules}
    for m in modules:
        m.DEFAULT_TEMP_DIR = str(folder)
    _OWNED.append(folder)
    atexit.register(remove_private_temp)

    def exit_now(code: int) -> None:
        remove_private_temp()  # again: an upload may have arrived since the signal
        os._exit(code)

    def stop(signum, frame):
        if getattr(stop, "stopping", False):  # a second signal: do not wait any longer
            exit_now(128 + signum)
        stop.stopping, stop.signum = True, signum
        for demo in list(_SERVED):  # no waiting for open connections (an event stream stays open for minutes)
            if getattr(demo, "server", None) is not None:
                demo.server.force_exit = True
        logging.getLogger("uvicorn.error").disabled = True  # the cut connections' CancelledError tracebacks
        timer = threading.Timer(grace, exit_now, (128 + signum,))  # counted from the signal, not after the removal
        timer.daemon = True
        timer.start()
        remove_private_temp()
        raise KeyboardInterrupt  # Gradio's launch() stops its server on this; then the block ends

    handlers = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield folder
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
        if before_env is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = before_env
        for m, value in before_modules.items():
            m.DEFAULT_TEMP_DIR = value
        remove_private_temp()
        if getattr(stop, "stopping", False):
            # stopped by a signal: a request's thread may still be inside a torch op, and an interpreter that shuts
            # down under it aborts (SIGABRT, exit status 134: "terminate called without an active exception")
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(128 + stop.signum if sys.exc_info()[0] else 0)  # a server that had started stopped cleanly


def remove_private_temp() -> None:
    """Remove the private temporary folders of this process (again and again: Gradio may write while it stops)."""
    for folder in _OWNED:
        shutil.rmtree(folder, ignore_errors=True)


class TempFiles:
    """Output files with unique names in a folder inside Gradio's cache folder, and a bound on temporary files.

    ``root`` is the folder whose size is bounded: by default the outputs folder itself; when Gradio's cache folder is
    a private one of this process (:func:`private_temp_files`), the whole cache folder, uploads included. Files
    older than ``max_age`` seconds are deleted; while the folder holds more than ``max_bytes`` (each file counted
    with :data:`FILE_OVERHEAD_BYTES`) or more than ``max_files`` files, the oldest files are deleted first. Files
    younger than :data:`GRACE_SECONDS` and files that were there when the bound was first applied (Gradio's copies of
    the examples) are kept."""

    def __init__(self, max_bytes: int = MAX_TEMP_MB * MB, max_age: float = 3600.0, max_files: int = MAX_TEMP_FILES):
        cache = Path(get_upload_folder()).resolve()
        cache.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="vaedemo-outputs-", dir=cache))
        self.root = cache if cache in _OWNED else self.dir
        self.max_bytes, self.max_age, self.max_files = max_bytes, max_age, max_files
        self._lock = threading.Lock()
        self._kept: set[str] = set()  # what was there when start() was called: Gradio's copies of the examples
        self._last_sweep = 0.0
        # what the last sweep left (bytes, files counted as in _files) and how much of it no sweep may delete yet
        # (files within the grace period, the kept ones), and what admitted uploads have yet to send: see
        # admit_upload. Under a lock of their own, held for arithmetic only (the event loop updates them as bytes
        # arrive; a sweep holds the other lock for as long as its walk takes)
        self._counts = threading.Lock()
        self._total = self._unremovable = self._incoming = 0
        self._stop = threading.Event()
        atexit.register(self.close)

    def close(self) -> None:
        """Stop the background sweeps and remove the outputs folder."""
        self._stop.set()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, every: float = SWEEP_SECONDS) -> None:
        """Keep what the folder holds now (the page's own files), then check the bound every ``every`` seconds in a
        background thread (uploads arrive without any handler)."""
        self._kept = {p for _, _, p in self._files()}

        def loop():
            while not self._stop.wait(every):
                with contextlib.suppress(Exception):  # a sweep that fails (a full disk, ...) is tried again later
                    self.sweep(force=True)

        threading.Thread(target=loop, name="vaedemo-temp-sweep", daemon=True).start()

    def _files(self) -> list[tuple[float, int, str]]:
        out = []
        for folder, _, names in os.walk(self.root):
            for name in names:
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):  # a file another thread is deleting
                    st = os.lstat(path)
                    out.append((st.st_mtime, st.st_size + FILE_OVERHEAD_BYTES, path))
        return out

    def total_bytes(self) -> int:
        """What the files count against ``max_bytes``: their sizes and :data:`FILE_OVERHEAD_BYTES` each."""
        return sum(size for _, size, _ in self._files())

    def sweep(self, force: bool = False) -> int:
        """Apply the bound (at most once a second unless forced); returns how many files were deleted."""
        with self._lock:
            if not force and time.monotonic() - self._last_sweep < 1.0:
                return 0
            return self._sweep()

    def _sweep(self) -> int:
        """:meth:`sweep` with the lock held: uploads admitted but still arriving count against the bound."""
        self._last_sweep = time.monotonic()
        files = sorted(self._files())  # oldest first
        now, total, count, n = time.time(), sum(size for _, size, _ in files), len(files), 0
        unremovable, incoming = 0, self._incoming  # (an arriving upload's bytes so far are files here already)
        root = str(self.root)
        for mtime, size, path in files:
            arriving = os.path.dirname(path) == root and os.path.basename(path).startswith("tmp")
            if now - mtime < (UPLOAD_PAUSE_SECONDS if arriving else GRACE_SECONDS) or path in self._kept:
                unremovable += size
                continue
            within = total + incoming <= self.max_bytes and count <= self.max_files
            if within and now - mtime <= self.max_age:
                continue
            with contextlib.suppress(OSError):
                os.unlink(path)
                total, count, n = total - size, count - 1, n + 1
        with self._counts:
            self._total, self._unremovable = total, unremovable
        self._remove_empty_folders(now)
        return n

    def admit_upload(self, size: int) -> bool:
        """Whether an upload of ``size`` bytes (its request's length) fits: the bound holds the files no sweep may
        delete yet (within the grace period, an arriving upload's bytes so far among them), what admitted uploads
        have yet to send, and this one; older files are deleted to make room, oldest first. Gradio writes an upload
        before any handler runs, and a bound applied only by the background sweeps let a flood of uploads fill 5.6
        times the bound between two of them. An admitted upload reports its bytes as they arrive
        (:meth:`upload_received`) and ends with :meth:`upload_done`. (Its file's overhead counts once the file is
        there, as every file's does.)"""
        with self._lock:
            with self._counts:
                over = self._total + self._incoming + size > self.max_bytes
                self._incoming += size  # what a sweep must make room for
            try:
                if over or time.monotonic() - self._last_sweep >= 1.0:
                    self._sweep()
            finally:
                with self._counts:
                    fits = self._unremovable + self._incoming <= self.max_bytes
                    if not fits:
                        self._incoming -= size
            return fits

    def upload_received(self, size: int) -> None:
        """``size`` bytes of an admitted upload have arrived: a file within the grace period now, as far as the bound
        knows until the next sweep measures the folder."""
        with self._counts:
            self._incoming -= size
            self._total += size
            self._unremovable += size

    def upload_done(self, unsent: int) -> None:
        """An admitted upload has ended (or failed) with ``unsent`` bytes of its length never received."""
        with self._counts:
            self._incoming -= unsent

    def _remove_empty_folders(self, now: float) -> None:
        """Gradio keeps each upload in a folder of its own: remove those left empty (not just made, though)."""
        for folder, subfolders, names in os.walk(self.root, topdown=False):
            p = Path(folder)
            if names or subfolders or p in (self.root, self.dir):
                continue
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime > 60:
                    p.rmdir()

    def wav(self, audio: np.ndarray, sample_rate: int, stem: str) -> str:
        """Write a wav at the audio's own loudness: 16-bit, or 32-bit float when it goes beyond full scale."""
        fd, name = tempfile.mkstemp(prefix=f"{stem}-", suffix=".wav", dir=self.dir)
        with open(fd, "wb") as f:
            peak = float(np.abs(audio).max()) if audio.size else 0.0
            sf.write(f, audio, sample_rate, format="WAV", subtype="PCM_16" if peak <= 1.0 else "FLOAT")
        self.sweep()
        return name
