"""``python -m vaedemo.push_to_hub BUNDLE org/repo [--private]``: upload a bundle to a Hugging Face model repo.

The token comes from ``--token``, ``HF_TOKEN`` or ``huggingface-cli login``. Load it back with
``vaedemo.load("hf://org/repo")``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from .bundle import MAX_WEIGHT_BYTES, load
from .cli import user_errors
from .dataset_summary import read_summary
from .errors import VaedemoError
from .hub import BUNDLE_FILES, FILE_LIMITS, OPTIONAL_FILES, bundle_file, refuse_hub_id_for_writing


def push_to_hub(bundle_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload a bundle folder to a Hub model repo (created if needed); returns the commit URL."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:  # the user's mistake, before any file is read (it was an upload's failure, exit 1, after the bundle's check)
        validate_repo_id(repo_id)
    except HFValidationError:
        raise VaedemoError(f"{str(repo_id)[:96]!r} is not a Hub repo id: org/name (or name) of letters, digits, '-', "
                           "'_' and '.'.") from None  # fmt: skip
    # (as a Path, hf://org/src read "hf:/org/src", which was then "not a bundle folder")
    refuse_hub_id_for_writing(bundle_dir, "python -m vaedemo.push_to_hub", "uploads the files of a bundle folder")
    files = bundle_files(Path(bundle_dir))

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(real)) for name, real in files.items()]
    return str(api.create_commit(repo_id, operations, commit_message="Upload vaedemo bundle"))


UPLOAD_TIMEOUT_SECONDS = 60.0  # the longest wait for a connection, or for the server's next bytes


@contextlib.contextmanager
def bounded_waits():
    """Within the block, huggingface_hub's HTTP client (the one its factory makes, a user's own included) waits at
    most UPLOAD_TIMEOUT_SECONDS for a connection or the server's next bytes: its default waits forever, and an upload
    to a server that took the connection and never answered (a stalled proxy) never ended. The factory before it is
    restored afterwards. (Each wait is bounded, not the whole upload; the weights may go through hf_xet's own
    client, which this does not reach.)"""
    try:
        from huggingface_hub import set_client_factory
        from huggingface_hub.utils import _http

        before = _http._GLOBAL_CLIENT_FACTORY  # (no public getter)
    except (ImportError, AttributeError):  # huggingface_hub before 1.0 (requests, not httpx): its own defaults
        yield
        return

    def factory():
        client = before()
        client.timeout = UPLOAD_TIMEOUT_SECONDS
        return client

    set_client_factory(factory)
    try:
        yield
    finally:
        set_client_factory(before)


def bundle_files(path: Path) -> dict[str, Path]:
    """The files of the bundle to upload (name -> the file it is), checked before any network: the bundle loads back
    (config, weights, card) and its training-set summary reads; each is a plain file inside the folder (an upload of
    the folder would follow a link, say a summary.json linked to a token file, and publish what it points at)."""
    load(path)
    read_summary(path)
    files = {name: bundle_file(path, name, FILE_LIMITS.get(name, MAX_WEIGHT_BYTES)) for name in BUNDLE_FILES + OPTIONAL_FILES}
    return {name: real for name, real in files.items() if real is not None}


@user_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaedemo.push_to_hub", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("repo_id", help="org/repo")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--token")
    args = parser.parse_args(argv)
    try:
        with bounded_waits():
            print(push_to_hub(args.bundle, args.repo_id, private=args.private, token=args.token))
    except VaedemoError:
        raise  # the user's own mistake (not a bundle): one sentence and exit 2, as every command says it
    except Exception as e:  # network and authorisation failures from huggingface_hub
        first_line = (str(e).splitlines() or [""])[0]  # a TimeoutError() has no message at all
        print(f"error: the upload to {args.repo_id} failed ({type(e).__name__}: {first_line}).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
