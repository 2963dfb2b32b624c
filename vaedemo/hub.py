"""Where a bundle lives: a local folder, or a Hugging Face Hub repo (``hf://org/repo[@revision]``).

Downloads go through huggingface_hub, which honours ``HF_HUB_OFFLINE=1`` (served from the local cache). Only the
bundle's own files are fetched. Uploading lives in :mod:`vaedemo.push_to_hub`.
"""

from __future__ import annotations

from pathlib import Path

from .errors import CheckpointError

BUNDLE_FILES = ("config.json", "model.safetensors", "README.md")  # what save_bundle writes
# a training-set summary (python -m vaedemo.dataset_summary) feeds the demo's latent map and typicality
OPTIONAL_FILES = ("summary.json", "summary.safetensors")


def parse_hub_id(source: str) -> tuple[str, str | None]:
    """``hf://org/repo[@revision]`` -> (repo id, revision or None)."""
    repo, _, revision = source[len("hf://") :].partition("@")
    if repo.count("/") != 1:
        raise CheckpointError(f"'{source[:80]}' is not a Hub id; write hf://org/repo or hf://org/repo@revision.")
    return repo, revision or None


def download(source: str) -> Path:
    """The local snapshot folder of ``hf://org/repo[@revision]``."""
    repo, revision = parse_hub_id(source)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id=repo, revision=revision, allow_patterns=[*BUNDLE_FILES, *OPTIONAL_FILES]))
    except LocalEntryNotFoundError:
        raise CheckpointError(
            f"{source} is not in the local Hugging Face cache and the Hub cannot be reached (offline or HF_HUB_OFFLINE=1)."
        ) from None
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise CheckpointError(f"{source} could not be downloaded from the Hugging Face Hub ({type(e).__name__}).") from None


def resolve(source: str | Path) -> Path:
    """A local folder for ``source``: itself, or the Hub snapshot of ``hf://org/repo[@revision]``."""
    s = str(source)
    if s.startswith("hf://"):
        return download(s)
    p = Path(s)
    if not p.is_dir():
        raise CheckpointError(f"checkpoint {s[:200]} is not a bundle folder (expected a folder with config.json).")
    return p
