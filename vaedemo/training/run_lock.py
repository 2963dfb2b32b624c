"""One training per run folder: an exclusive lock on ``run_dir/.lock``, held while the training runs.

Two trainings in one folder (the same command started twice, or a ``--resume`` while the first still ran) both wrote
``checkpoints/last.ckpt`` through the same temporary file and both replaced its bundles: the run's checkpoint became
the other's, its step going backwards, and one of them died on the other's renamed file. The lock is the kernel's
(``flock``): a killed training releases it with its process, so a resume after a crash never finds a stale one. On a
network file system that does not support it the lock may not hold; the folder is then one's own to keep apart.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import VaedemoError

LOCK_NAME = ".lock"


def launched_rank() -> bool:
    """Whether this process is one a distributed launcher started beside rank 0 (Lightning's DDP launcher, torchrun):
    those train the same run as rank 0, which holds the lock for all of them."""
    return any(os.environ.get(name, "0") not in ("", "0") for name in ("RANK", "LOCAL_RANK", "NODE_RANK"))


class RunLock:
    """``with RunLock(run_dir):`` creates the folder if needed and holds its lock, or raises one sentence naming the
    process that holds it. A training that wrote nothing (a setting refused before it began) leaves neither the lock
    nor a folder it created."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.file = None
        self.created = False

    def __enter__(self) -> RunLock:
        if launched_rank():
            return self
        self.created = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+")  # (not truncated before the lock is ours: it names the holder)
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read(32).strip()
            file.close()
            by = f" (process {holder})" if holder.isdigit() else ""
            raise VaedemoError(f"{self.path.parent} is in use by another training{by}; wait for it to end, or set "
                               "another train.run_dir.") from None  # fmt: skip
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self.file = file
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            if [p.name for p in self.path.parent.iterdir()] == [LOCK_NAME]:  # (while it is still ours)
                self.path.unlink()
                if self.created:
                    self.path.parent.rmdir()
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None
