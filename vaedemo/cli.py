"""What every command line of vaedemo shares: a user's mistake is printed as one line, without a traceback."""

from __future__ import annotations

import functools
import json
import math
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import VaedemoError
from .hub import BUNDLE_FILES, OPTIONAL_FILES

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


def check_seed(seed: int) -> None:
    """Refuse, before the work, a --seed that numpy and torch do not take (a negative one, one past 2**64 - 1, which
    a report met only after its whole evaluation); draws seeded seed + 0, 1, ... stay within torch's range."""
    if not 0 <= seed < 2**63:
        raise VaedemoError(f"--seed must be a whole number from 0 to 2**63 - 1, got {seed}.")


def check_outputs(reads: Sequence[str | None] = (), **paths: str | None) -> None:
    """Refuse, before any work, output files (``--out``, ``--json``, ... by flag name, ``json_path`` for ``--json``)
    that could not be written: one named twice (the second would silently replace the first), a folder, or a file in
    a folder that does not exist. Without this the error came as a traceback after the whole evaluation. Nor may one
    replace a file in the folders the command ``reads`` (its ``--data``): ``--json`` named one of the clips being
    evaluated, and replaced it. Each folder it reads must be one: a missing --data was found after the work on the
    folders before it (priors: after the prior's fit and every draw, minutes)."""
    for folder in filter(None, reads):
        if not Path(folder).is_dir():
            what = "is not a folder" if os.path.lexists(folder) else "does not exist"
            raise VaedemoError(f"data folder {folder} {what}.")
    seen: dict[str, str] = {}
    read_roots = [Path(os.path.realpath(folder)) for folder in reads if folder]
    for flag, path in paths.items():
        if not path:
            continue
        name = "--" + flag.removesuffix("_path").replace("_", "-")
        p = Path(path)
        stream = _is_stream(p)  # /dev/stdout and /dev/stderr lead to one terminal, and each is written as it is
        key = os.path.normcase(os.path.abspath(p) if stream else os.path.realpath(p))  # a link and its target: one
        if key in seen:
            raise VaedemoError(f"{name} and {seen[key]} name the same file {path}; give each its own.")
        seen[key] = name
        if p.is_dir():
            raise VaedemoError(f"{name} {path} is a folder; give a file name.")
        if stream:  # /dev/stdout, a pipe (bash's >(...) is /dev/fd/N): written as it is, not replaced
            if not os.access(p, os.W_OK):
                raise VaedemoError(f"{name} {path} is not writable.")
            continue
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise VaedemoError(f"{name} {path}: the folder {parent} does not exist.")
        check_writable(parent, f"{name} {path}")
        for written in (p, Path(os.path.realpath(p))):  # written through a link, a file is its target
            if _a_models_own_file(written):
                raise VaedemoError(f"{name} {path} would replace a file of the model in {written.parent}; write it "
                                   "elsewhere.")
        target = Path(os.path.realpath(p))
        read = next((root for root in read_roots if target.is_relative_to(root)), None)
        if read is not None and os.path.lexists(p):
            raise VaedemoError(f"{name} {path} would replace a file of {read}, which this command reads; write it "
                               "elsewhere.")


def _a_models_own_file(path: Path) -> bool:
    """Whether ``path`` names one of a bundle's own files (its config, card or training-set summary) in a folder that
    holds model weights: ``evaluate --json BUNDLE/config.json`` replaced the bundle's config with the evaluation's, and
    the model could not be loaded again."""
    return path.name in BUNDLE_FILES + OPTIONAL_FILES and (path.parent / "model.safetensors").exists()


def json_safe(data):
    """``data`` with every non-finite float as None: ``json.dumps`` writes NaN and Infinity, which are not JSON
    (JavaScript's and most other readers refuse the whole file)."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(v) for v in data]
    return data


def write_outputs(texts: dict[str, str]) -> None:
    """Write each (path -> text), every file aside first and only then each over its path: an error writing one
    (a full disk) leaves no file half-written and none replaced. A link to a report is kept and its file replaced (the
    aside is made beside the file it names); a device or a pipe (/dev/stdout, bash's >(...)) is written as it is."""
    asides: list[tuple[str, Path]] = []
    streams = {Path(path): text for path, text in texts.items() if _is_stream(Path(path))}
    try:
        for path, text in texts.items():
            p = Path(path)
            if p in streams:
                continue
            p = Path(os.path.realpath(p))  # through a link: results/latest.json -> run7.json stays a link
            fd, aside = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent if str(p.parent) else ".")
            asides.append((aside, p))
            with os.fdopen(fd, "w") as f:
                f.write(text)
            as_user_file(Path(aside))  # a report is a file like any other
        for aside, p in asides:
            os.replace(aside, p)
        for p, text in streams.items():  # a device or a pipe cannot be replaced (and must not be: /dev/stdout as root)
            with open(p, "w") as f:
                f.write(text)
    except OSError as e:
        raise VaedemoError(f"could not write {p}: {e.strerror or e}.") from None
    finally:
        for aside, _ in asides:
            if os.path.lexists(aside):
                os.unlink(aside)


def _is_stream(p: Path) -> bool:
    """Whether ``p`` is (or links to) something that is not a regular file or a folder: a device, a pipe."""
    try:
        mode = os.stat(p).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def check_writable(folder: Path, what: str) -> None:
    """Refuse, before any work, ``folder`` when it cannot be written in (not there yet: its nearest existing parent,
    where it would be made). A real probe, an empty folder made and removed: ``os.access`` says yes to root wherever
    the file system says no. Without it the write came after the work (a whole evaluation, every clip encoded) as a
    PermissionError traceback."""
    existing = Path(folder)
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    try:
        Path(tempfile.mkdtemp(prefix=".vaedemo-probe-", dir=existing)).rmdir()
    except OSError as e:
        raise VaedemoError(f"{what}: {existing} is not writable ({e.strerror or type(e).__name__}).") from None


def as_user_file(path: Path) -> None:
    """Give a written file the permissions of any file the user makes (the umask's): safetensors and mkstemp write
    their files private (0600), which other users of a shared run folder or a Docker volume could not read."""
    path.chmod(0o666 & ~current_umask())


def current_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def emit_report(text: str, data, out: str | None, json_path: str | None) -> None:
    """Print a markdown report; also write it to ``out`` and the numbers behind it to ``json_path`` when given (the
    command checked both with :func:`check_outputs` before its work). Non-finite numbers are null in the JSON."""
    print(text)
    texts = {}
    if out:
        texts[out] = text
    if json_path:
        texts[json_path] = json.dumps(json_safe(data), indent=2, allow_nan=False)
    write_outputs(texts)
