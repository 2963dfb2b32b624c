"""vaedemo: a RAVE-style audio VAE with RealNVP flows, its training, and a browser demo of its latent space.

>>> import vaedemo
>>> engine = vaedemo.Engine("checkpoints/drums_single_flow")      # doctest: +SKIP
>>> audio = engine.sample(n=4, temperature=0.8, seed=1)           # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import AudioError, CheckpointError, ConfigError, DataError, VaedemoError

__all__ = ["load", "Engine", "VaedemoError", "AudioError", "ConfigError", "CheckpointError", "DataError"]


def load(source, device="cpu"):
    """Load a checkpoint bundle from a folder or ``hf://org/repo[@revision]`` (see :mod:`vaedemo.bundle`)."""
    from .bundle import load as _load

    return _load(source, device=device)


def __getattr__(name):
    if name == "Engine":
        from .inference import Engine

        return Engine
    raise AttributeError(name)
