"""``python -m vaedemo.push_to_hub BUNDLE org/repo [--private]``: upload a bundle to a Hugging Face model repo.

The token comes from ``--token``, ``HF_TOKEN`` or ``huggingface-cli login``. Load it back with
``vaedemo.load("hf://org/repo")``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .bundle import load
from .cli import user_errors
from .errors import VaedemoError
from .hub import BUNDLE_FILES, OPTIONAL_FILES


def push_to_hub(bundle_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload a bundle folder to a Hub model repo (created if needed); returns the commit URL."""
    path = Path(bundle_dir)
    load(path)  # refuse to upload what would not load back (not a bundle, weights that do not fit), before any network
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(
        folder_path=str(path), repo_id=repo_id, allow_patterns=[*BUNDLE_FILES, *OPTIONAL_FILES],
        commit_message="Upload vaedemo bundle",
    )
    return str(info)


@user_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaedemo.push_to_hub", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("repo_id", help="org/repo")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--token")
    args = parser.parse_args(argv)
    try:
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
