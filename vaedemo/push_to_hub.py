"""``python -m vaedemo.push_to_hub BUNDLE org/repo [--private]``: upload a bundle to a Hugging Face model repo.

The token comes from ``--token``, ``HF_TOKEN`` or ``huggingface-cli login``. Load it back with
``vaedemo.load("hf://org/repo")``.
"""

from __future__ import annotations

import argparse
import sys

from .errors import VaedemoError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaedemo.push_to_hub", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("repo_id", help="org/repo")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--token")
    args = parser.parse_args(argv)
    from .checkpoint import push_to_hub

    try:
        print(push_to_hub(args.bundle, args.repo_id, private=args.private, token=args.token))
    except VaedemoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # network and authorisation failures from huggingface_hub
        print(f"error: the upload to {args.repo_id} failed ({type(e).__name__}: {str(e).splitlines()[0]}).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
