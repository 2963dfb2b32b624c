"""Bounds on what a request may send, applied before any of Gradio's routes reads it (ASGI middleware).

Gradio reads a request's whole body before anything of the demo runs: the queue's JSON into memory, an upload onto
disk. Without these bounds a 200 MB JSON body was accepted (half a gigabyte of memory each, not given back), and a
flood of uploads filled 5.6 times ``--max-temp-mb`` between two background sweeps of the temporary folder.

* A body other than an upload: at most :data:`MAX_BODY_BYTES` (the page's own messages are a few kB: files travel
  through the upload route).
* An upload: admitted only where the temporary folder has room for it (:meth:`TempFiles.admit_upload
  <vaedemo.demo.files.TempFiles.admit_upload>`).
* A body of unstated length (chunked) is refused: its size could only be learnt by reading it.

Each refusal is an HTTP status and one plain sentence (the page shows an upload's as "HTTP 503: ...").
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from .files import MB, TempFiles

MAX_BODY_BYTES = 1 * MB
UPLOAD_ROUTE = "/gradio_api/upload"


def _header(scope: dict, name: bytes) -> bytes | None:
    return next((v for k, v in scope.get("headers", ()) if k.lower() == name), None)


async def _refuse(send, status: int, sentence: str) -> None:
    body = sentence.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestBodies:
    """ASGI middleware: the bounds of the module's docstring, on the app it wraps."""

    def __init__(self, app, files: TempFiles, max_body: int = MAX_BODY_BYTES):
        self.app, self.files, self.max_body = app, files, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if _header(scope, b"transfer-encoding") is not None:
            return await _refuse(send, 411, "Send the request with its length (Content-Length), not in chunks.")
        raw = _header(scope, b"content-length")
        length = int(raw) if raw is not None and raw.isdigit() else 0  # (a malformed one: the server refuses it)
        if scope["path"].endswith(UPLOAD_ROUTE) and length:
            return await self._upload(scope, receive, send, length)
        if length > self.max_body:
            return await _refuse(send, 413, f"A request may send at most {self.max_body // 1024} kB; files go "
                                 "through the upload route.")  # fmt: skip
        return await self.app(scope, receive, send)

    async def _upload(self, scope, receive, send, length: int):
        if length > self.files.max_bytes:
            return await _refuse(send, 413, f"An upload may be at most {self.files.max_bytes / MB:g} MB here "
                                 "(the server's space for uploads).")  # fmt: skip
        if not await run_in_threadpool(self.files.admit_upload, length):  # (it may walk the folder)
            return await _refuse(send, 503, "The server's space for uploads is full; please try again in a minute.")
        try:
            return await self.app(scope, receive, send)
        finally:
            self.files.upload_done(length)
