"""The demo's output files: unique names in a per-app temporary folder, deleted by age and at exit."""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


class TempFiles:
    """Output files with unique names in a per-app folder; files older than ``max_age`` s are deleted."""

    def __init__(self, max_age: float = 3600.0):
        self.dir = Path(tempfile.mkdtemp(prefix="vaedemo-app-"))
        self.max_age, self._last_sweep = max_age, time.monotonic()
        atexit.register(shutil.rmtree, self.dir, True)

    def sweep(self, force: bool = False) -> int:
        """Delete old files (at most once a minute unless forced); returns how many were deleted."""
        if not force and time.monotonic() - self._last_sweep < 60:
            return 0
        self._last_sweep, now, n = time.monotonic(), time.time(), 0
        for p in self.dir.glob("*"):
            with contextlib.suppress(OSError):  # a file another request is deleting
                if now - p.stat().st_mtime > self.max_age:
                    p.unlink()
                    n += 1
        return n

    def wav(self, audio: np.ndarray, sample_rate: int, stem: str) -> str:
        """Write a wav at the audio's own loudness: 16-bit, or 32-bit float when it goes beyond full scale."""
        self.sweep()
        fd, name = tempfile.mkstemp(prefix=f"{stem}-", suffix=".wav", dir=self.dir)
        with open(fd, "wb") as f:
            peak = float(np.abs(audio).max()) if audio.size else 0.0
            sf.write(f, audio, sample_rate, format="WAV", subtype="PCM_16" if peak <= 1.0 else "FLOAT")
        return name
