"""onnxruntime-web, the runtime that plays a causal model live inside the visitor's browser (the Live tab's
"in this browser" mode, :mod:`vaedemo.demo.browser_live`).

The app serves it from ``vendor/onnxruntime-web/`` (not in git: 15 MB). ``python -m vaedemo.demo.browser_runtime``
puts it there at set-up time (``scripts/setup.sh`` and the Dockerfile run it): the npm registry's tarball of a pinned
version, checked against the registry's sha512 before three files of its ``dist/`` are written: the WebAssembly
build without threads' loader (``ort.wasm.min.js``), its module and its binary. Nothing downloads when the app runs;
without these files the mode says how to install them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from vaedemo.cli import user_errors
from vaedemo.errors import VaedemoError

from .common import ROOT

VERSION = "1.31.1"
TARBALL = f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{VERSION}.tgz"
INTEGRITY = "sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
FILES = {"js": "ort.wasm.min.js", "mjs": "ort-wasm-simd-threaded.mjs", "wasm": "ort-wasm-simd-threaded.wasm"}
VENDOR = ROOT / "vendor" / "onnxruntime-web"
MAX_TARBALL_BYTES = 64 * 1024 * 1024  # (the pinned one is 35 MB)


def installed(folder: Path = VENDOR) -> dict[str, Path] | None:
    """The runtime's files by role ("js", "mjs", "wasm"), or None where set-up has not fetched them (or fetched
    another version)."""
    paths = {role: folder / name for role, name in FILES.items()}
    try:
        version = (folder / "VERSION").read_text().strip()
    except OSError:
        return None
    return paths if version == VERSION and all(p.is_file() for p in paths.values()) else None


def _checked(data: bytes, integrity: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if digest != expected:
        raise VaedemoError(f"the onnxruntime-web tarball does not match its registry checksum ({algorithm}); nothing "
                           "was written.")  # fmt: skip


def fetch(url: str = TARBALL, integrity: str = INTEGRITY, folder: Path = VENDOR) -> dict[str, Path]:
    """Download the tarball, check it, and write its three files into ``folder`` (written aside, then moved in)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read(MAX_TARBALL_BYTES + 1)
    except OSError as e:
        raise VaedemoError(f"could not download onnxruntime-web from {url} ({getattr(e, 'reason', e)}).") from None
    if len(data) > MAX_TARBALL_BYTES:
        raise VaedemoError(f"{url} is larger than an onnxruntime-web tarball can be; nothing was written.")
    _checked(data, integrity)
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar, tempfile.TemporaryDirectory(dir=folder) as tmp:
        for name in FILES.values():
            try:
                member = tar.extractfile(f"package/dist/{name}")
            except KeyError:
                member = None
            if member is None:
                raise VaedemoError(f"the onnxruntime-web tarball has no dist/{name}; nothing was written.")
            Path(tmp, name).write_bytes(member.read())
        for name in FILES.values():
            Path(tmp, name).replace(folder / name)
    (folder / "VERSION").write_text(VERSION + "\n")  # last: the files are whole once it says so
    return installed(folder)


@user_errors
def main(argv: list[str] | None = None) -> int:
    if installed():
        print(f"onnxruntime-web {VERSION}: already in {VENDOR}")
        return 0
    fetch()
    print(f"onnxruntime-web {VERSION}: written to {VENDOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
