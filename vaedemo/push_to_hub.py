"""``python -m vaedemo.push_to_hub BUNDLE org/repo [--private]``: upload a bundle to a Hugging Face model repo.

The token comes from ``--token``, ``HF_TOKEN`` or ``huggingface-cli login``. Load it back with
``vaedemo.load("hf://org/repo")``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .bundle import read_bundle_config
from .cli import user_errors
from .hub import BUNDLE_FILES, OPTIONAL_FILES


def push_to_hub(bundle_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload a bundle folder to a Hub model repo (created if needed); returns the commit URL."""
    path = Path(bundle_dir)
    read_bundle_config(path)  # refuse to upload something that is not a bundle
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
    except Exception as e:  # network and authorisation failures from huggingface_hub
        print(f"error: the upload to {args.repo_id} failed ({type(e).__name__}: {str(e).splitlines()[0]}).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
