"""A Hugging Face Hub of one repo on 127.0.0.1, for tests of the real huggingface_hub download path without a network.

It answers what ``snapshot_download`` and ``HfApi.model_info`` / ``list_repo_tree`` ask (the repo's revision with its
files' sizes, its file tree, each file by ``resolve``) from a dict of file names to contents; ``listed_sizes`` can make
the listings claim other sizes than the files have (a repo whose weights the Hub lists as 300 MB, say).
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "c0ffee" * 6 + "c0ff"


class FakeHub:
    def __init__(self, repo: str, files: dict[str, bytes], listed_sizes: dict[str, int] | None = None):
        self.repo, self.files, self.listed = repo, files, {n: len(b) for n, b in files.items()} | (listed_sizes or {})
        self.fetched: list[str] = []  # the files whose contents were sent
        self.info_requests = 0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                hub.answer(self, head=False)

            def do_HEAD(self):
                hub.answer(self, head=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, request: BaseHTTPRequestHandler, head: bool) -> None:
        path = request.path.split("?")[0]
        api = f"/api/models/{self.repo}/"
        if path.startswith(api + "revision/") or path == api.rstrip("/"):
            body = {"id": self.repo, "sha": COMMIT, "siblings": [{"rfilename": n, "size": self.listed[n]}
                                                                   for n in self.files]}  # fmt: skip
            self.info_requests += 1
            return self.send(request, json.dumps(body).encode(), head)
        if path.startswith(api + "tree/"):
            tree = [{"type": "file", "path": n, "size": self.listed[n], "oid": hashlib.sha1(n.encode()).hexdigest()}
                    for n in self.files]  # fmt: skip
            return self.send(request, json.dumps(tree).encode(), head)
        prefix = f"/{self.repo}/resolve/"
        if path.startswith(prefix) and path.rsplit("/", 1)[1] in self.files:
            name = path.rsplit("/", 1)[1]
            if not head:
                self.fetched.append(name)
            etag = hashlib.sha1(self.files[name]).hexdigest()
            return self.send(request, self.files[name], head, {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"'})
        self.send(request, b'{"error": "not found"}', head, code=404)

    @staticmethod
    def send(request, body: bytes, head: bool, headers: dict[str, str] | None = None, code: int = 200) -> None:
        request.send_response(code)
        for k, v in (headers or {}).items():
            request.send_header(k, v)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if not head:
            request.wfile.write(body)


def offline_cache(cache, repo: str, folder, names, monkeypatch) -> str:
    """The cache layout huggingface_hub writes (blobs, snapshots/<commit> of links into them, refs/main) holding
    ``folder``'s files ``names`` as ``repo``, and huggingface_hub pointed at it, offline; returns the commit."""
    import shutil

    import huggingface_hub.constants as constants

    root = cache / f"models--{repo.replace('/', '--')}"
    snap = root / "snapshots" / COMMIT
    (root / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for i, name in enumerate(names):
        blob = root / "blobs" / f"{i:040x}"
        shutil.copy(folder / name, blob)
        (snap / name).symlink_to(f"../../blobs/{blob.name}")
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(COMMIT)
    for name, value in (("HF_HUB_OFFLINE", "1"), ("HF_HUB_CACHE", str(cache))):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # read when huggingface_hub was imported
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return COMMIT
