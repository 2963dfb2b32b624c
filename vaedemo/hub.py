"""Where a bundle lives: a local folder, or a Hugging Face Hub repo (``hf://org/repo[@revision]``).

Downloads go through huggingface_hub, which honours ``HF_HUB_OFFLINE=1`` (served from the local cache). Only the
bundle's own files are fetched. Uploading lives in :mod:`vaedemo.push_to_hub`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import CheckpointError

BUNDLE_FILES = ("config.json", "model.safetensors", "README.md")  # what save_bundle writes
# a training-set summary (python -m vaedemo.dataset_summary) feeds the demo's latent map and typicality
OPTIONAL_FILES = ("summary.json", "summary.safetensors")
# The most each file but the weights may weigh (bytes), far above any real bundle's (a card of 10 kB, a summary of
# 100 k clips): a file over it is refused before it is downloaded or read. The weights' limit comes from the model
# the config describes (vaedemo.bundle).
FILE_LIMITS = {"config.json": 1_000_000, "README.md": 1_000_000, "summary.json": 50_000_000,
               "summary.safetensors": 100_000_000}  # fmt: skip
WEIGHTS = "model.safetensors"
LISTING_TIMEOUT_SECONDS = 10.0  # asking the Hub for a repo's file sizes; the download itself has huggingface_hub's


def parse_hub_id(source: str) -> tuple[str, str | None]:
    """``hf://org/repo[@revision]`` -> (repo id, revision or None)."""
    repo, _, revision = source[len("hf://") :].partition("@")
    org, _, name = repo.partition("/")
    if not (org and name) or "/" in name or any(part in (".", "..") for part in (org, name)):
        raise CheckpointError(f"'{source[:80]}' is not a Hub id; write hf://org/repo or hf://org/repo@revision.")
    # a revision is a branch, a tag or a commit: not a path (huggingface_hub reads one as a ref file's path in its
    # cache), nor a long or multi-line text for the messages that name it
    if revision and (".." in revision or revision.startswith("/") or "\\" in revision or len(revision) > 200
                     or not revision.isprintable()):  # fmt: skip
        raise CheckpointError(f"{source[:80]!r} has a revision that is not a branch, tag or commit name.")
    return repo, revision or None


def download(source: str, limits: dict[str, int]) -> Path:
    """The local snapshot folder of ``hf://org/repo[@revision]`` with those of the files named in ``limits`` that the
    repo holds; a file the Hub lists as larger than its limit is refused before any of it is fetched (offline, the
    cache's files are checked when read: :func:`bundle_file`)."""
    repo, revision = parse_hub_id(source)
    for name, size in _listed_sizes(repo, revision).items():
        if name in limits and size > limits[name]:
            raise CheckpointError(f"{source[:120]} holds a {name} of {size / 1e6:.1f} MB, more than the "
                                  f"{limits[name] / 1e6:.1f} MB it can weigh, so it was not downloaded.")  # fmt: skip
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    try:
        # the revision as given, not the listing's commit: a branch's ref is what the cache answers offline later
        return Path(snapshot_download(repo_id=repo, revision=revision, allow_patterns=list(limits)))
    except LocalEntryNotFoundError:
        raise CheckpointError(f"{source[:120]} is not in the local Hugging Face cache and the Hub cannot be reached "
                              "(offline or HF_HUB_OFFLINE=1).") from None  # fmt: skip
    except HFValidationError:
        raise CheckpointError(f"'{source[:80]}' is not a valid Hub id or revision.") from None
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise CheckpointError(f"{source[:120]} could not be downloaded from the Hugging Face Hub "
                              f"({type(e).__name__}).") from None  # fmt: skip


def _listed_sizes(repo: str, revision: str | None) -> dict[str, int]:
    """The size in bytes of each file of the revision as the Hub lists it, in one request without retries; nothing
    offline or when the Hub cannot be asked (the download then serves the cache or says why it cannot)."""
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        return {}
    try:
        info = HfApi().model_info(repo, revision=revision, files_metadata=True, timeout=LISTING_TIMEOUT_SECONDS)
    except Exception:  # no route, refused, timed out, not found, a proxy's answer: whatever it is, the download says it
        return {}
    return {f.rfilename: f.size for f in info.siblings or () if f.size is not None}


def resolve(source: str | Path) -> Path:
    """A local folder for ``source``: itself, or the Hub snapshot of ``hf://org/repo[@revision]`` with every bundle
    file but the weights (:func:`vaedemo.bundle.load` fetches those once it knows how large the model is)."""
    s = str(source)
    if s.startswith("hf://"):
        return download(s, FILE_LIMITS)
    p = Path(s)
    if not p.is_dir():
        raise CheckpointError(f"checkpoint {s[:200]} is not a bundle folder (expected a folder with config.json).")
    return p


def refuse_hub_id_for_writing(source: str, command: str, does: str = "writes into the bundle's folder") -> None:
    """A command that writes into a bundle's folder is refused a Hub id: its folder is the Hugging Face cache's
    snapshot, which would then disagree with the commit it is filed under. ``does``: what the command does with the
    folder, for one that needs a folder of the user's own for another reason (an upload: its files)."""
    if str(source).startswith("hf://"):
        repo, _ = parse_hub_id(str(source))
        raise CheckpointError(f"{command} {does}, and {str(source)[:80]} is a Hub id: download it to a folder (hf "
                              f"download {repo} --local-dir DIR) and use that.")  # fmt: skip


def weights_file(source: str | Path, folder: Path, limit: int) -> Path:
    """The bundle's weight file, checked (:func:`bundle_file`); for a Hub bundle fetched now, refused unfetched when
    the Hub lists it larger than ``limit``."""
    if str(source).startswith("hf://"):  # the weights of the commit whose config was read (the snapshot's name)
        repo, _ = parse_hub_id(str(source))
        folder = download(f"hf://{repo}@{folder.name}", {WEIGHTS: limit})
    path = bundle_file(folder, WEIGHTS, limit)
    if path is None:
        raise CheckpointError(f"{folder} holds no {WEIGHTS}.")
    return path


def _containing_folders(folder: Path) -> tuple[Path, ...]:
    """Where a bundle's files may lie: its folder; for a snapshot of a Hugging Face cache (``models--org--name/
    snapshots/<commit>``, wherever the cache is) the repo's blobs too, since huggingface_hub keeps a snapshot's files
    as links into them. Only the blobs: a folder anyone can hand over laid out that way could link its card to a
    file beside them (``../../secret.txt``)."""
    folder = folder.resolve()
    repo = folder.parent.parent
    if folder.parent.name == "snapshots" and repo.name.startswith("models--"):
        return folder, repo / "blobs"
    return (folder,)


def bundle_file(folder: Path, name: str, limit: int) -> Path | None:
    """``folder/name`` (the file it leads to), or None when the bundle has none; refused when it is not a plain file
    inside the bundle or is larger than ``limit`` bytes. A bundle is a folder anyone can hand over (a clone, an
    archive): a README.md linked to /proc/self/environ or ~/.ssh/id_rsa would put that file on the demo's page as
    the model card."""
    path = folder / name
    if not os.path.lexists(path):  # a dangling link is there too, and refused below
        return None
    real = path.resolve()
    if not (any(real.is_relative_to(inside) for inside in _containing_folders(folder)) and real.is_file()):
        raise CheckpointError(f"{path} is not a file of the bundle (a link out of its folder, or not a plain file).")
    if real.stat().st_size > limit:
        raise CheckpointError(f"{path} is larger than {limit / 1e6:.1f} MB, more than a bundle's {name} can be.")
    return real
