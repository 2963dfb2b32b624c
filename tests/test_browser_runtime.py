"""onnxruntime-web's fetch at set-up time: a tarball is written only when it matches its checksum and holds the three
files, and an installed runtime is one whose files and version are all there."""

import base64
import hashlib
import io
import tarfile

import pytest

from vaedemo.demo.browser_runtime import FILES, VERSION, fetch, installed
from vaedemo.errors import VaedemoError

NAMES = tuple(FILES.values())


def _tarball(tmp_path, names=NAMES):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for name in names:
            body = f"contents of {name}".encode()
            info = tarfile.TarInfo(f"package/dist/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    path = tmp_path / "ort.tgz"
    path.write_bytes(data.getvalue())
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data.getvalue()).digest()).decode()
    return path.as_uri(), integrity


def test_a_checked_tarball_writes_the_three_files_and_its_version(tmp_path):
    url, integrity = _tarball(tmp_path)
    folder = tmp_path / "vendor"
    assert installed(folder) is None
    paths = fetch(url, integrity, folder)
    assert paths == installed(folder) and set(paths) == set(FILES)
    assert paths["wasm"].read_text() == f"contents of {FILES['wasm']}"
    assert (folder / "VERSION").read_text().strip() == VERSION


@pytest.mark.parametrize("case", ["checksum", "missing file"])
def test_a_wrong_or_incomplete_tarball_writes_nothing(tmp_path, case):
    url, integrity = _tarball(tmp_path, NAMES[:2] if case == "missing file" else NAMES)
    if case == "checksum":
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(b"another file").digest()).decode()
    folder = tmp_path / "vendor"
    with pytest.raises(VaedemoError, match="does not match its registry checksum" if case == "checksum"
                       else "has no dist/"):  # fmt: skip
        fetch(url, integrity, folder)
    assert installed(folder) is None
    assert not folder.exists() or not any(p.is_file() for p in folder.rglob("*"))


def test_another_version_is_not_the_installed_runtime(tmp_path):
    url, integrity = _tarball(tmp_path)
    folder = tmp_path / "vendor"
    fetch(url, integrity, folder)
    (folder / "VERSION").write_text("0.0.1\n")
    assert installed(folder) is None
