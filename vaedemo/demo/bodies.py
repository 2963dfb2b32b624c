"""Bounds on what a request may send, applied before any of Gradio's routes reads it (ASGI middleware).

Gradio reads a request's whole body before anything of the demo runs: the queue's JSON into memory, an upload onto
disk. Without these bounds a 200 MB JSON body was accepted (half a gigabyte of memory each, not given back), and a
flood of uploads filled 5.6 times ``--max-temp-mb`` between two background sweeps of the temporary folder.

* A body other than an upload: at most :data:`MAX_BODY_BYTES` (the page's own messages are a few kB: files travel
  through the upload route).
* An upload: at most ``--max-file-size`` (and a little for its form's framing), admitted only where the temporary
  folder has room for it (:meth:`TempFiles.admit_upload <vaedemo.demo.files.TempFiles.admit_upload>`). What it has
  yet to send stays reserved, so it must keep sending: a body that stalls for :data:`STALL_SECONDS`, or arrives
  slower than :data:`MIN_BYTES_PER_SECOND` on average after that long, is cut off (a connection that claimed a
  length and sent nothing held its place for as long as it stayed open).
* A body of unstated length (chunked) is refused: its size could only be learnt by reading it.

Each refusal is an HTTP status and one plain sentence (the page shows an upload's as "HTTP 503: ...").
"""

from __future__ import annotations

import asyncio
import time

from starlette.concurrency import run_in_threadpool

from .files import MB, UPLOAD_PAUSE_SECONDS, TempFiles

MAX_BODY_BYTES = 1 * MB
UPLOAD_ROUTE = "/gradio_api/upload"
FORM_FRAMING_BYTES = 64 * 1024  # an upload's multipart boundaries and headers, beyond its file
STALL_SECONDS = UPLOAD_PAUSE_SECONDS  # (the sweeps keep an arriving upload's file that long after its last write)
MIN_BYTES_PER_SECOND = 16 * 1024  # 128 kbit/s: a 50 MB file in under an hour


class StalledBodyError(Exception):
    """An upload's body stopped arriving, or arrives too slowly to keep its reserved place."""


def _header(scope: dict, name: bytes) -> bytes | None:
    return next((v for k, v in scope.get("headers", ()) if k.lower() == name), None)


async def _refuse(send, status: int, sentence: str) -> None:
    body = sentence.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestBodies:
    """ASGI middleware: the bounds of the module's docstring, on the app it wraps (``max_file_size`` in bytes)."""

    def __init__(self, app, files: TempFiles, max_file_size: int, max_body: int = MAX_BODY_BYTES):
        self.app, self.files, self.max_file_size, self.max_body = app, files, max_file_size, max_body

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
        if length > min(self.max_file_size + FORM_FRAMING_BYTES, self.files.max_bytes):
            limit = min(self.max_file_size, self.files.max_bytes)
            return await _refuse(send, 413, f"An upload may be at most {limit / MB:g} MB here.")
        unsent, admitted = length, False
        started = time.monotonic()

        async def receiving():
            nonlocal unsent
            waited = time.monotonic() - started
            if waited > STALL_SECONDS and length - unsent < MIN_BYTES_PER_SECOND * waited:
                raise StalledBodyError()
            try:
                message = await asyncio.wait_for(receive(), STALL_SECONDS)
            except TimeoutError:
                raise StalledBodyError() from None
            got = min(len(message.get("body", b"")), unsent)
            if got:
                unsent -= got
                self.files.upload_received(got)
            return message

        try:
            admitted = await run_in_threadpool(self.files.admit_upload, length)  # (it may walk the folder)
            if not admitted:
                return await _refuse(send, 503, "The server's space for uploads is full; please try again in a minute.")
            return await self.app(scope, receiving, send)
        except StalledBodyError:
            return await _refuse(send, 408, "The upload stopped arriving (or came too slowly); please send it again.")
        finally:
            if admitted:
                self.files.upload_done(unsent)
