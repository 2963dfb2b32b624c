"""Training data: folders of audio as clip datasets (:mod:`.dataset`), one-shots from soundfonts (:mod:`.soundfont`).

Imports are lazy so that ``python -m vaedemo.data.soundfont`` does not pay for torch.
"""

__all__ = ["ClipDataset", "build_datasets", "scan_audio"]


def __getattr__(name: str):
    if name in __all__:
        from . import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
