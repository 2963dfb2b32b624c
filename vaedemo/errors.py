"""The one exception family a user can cause: bad config, bad audio, bad checkpoint.

Every message is a single sentence that names the problem (and the file or key where it applies). The CLIs print it
without a traceback and exit non-zero; the app shows it with ``gr.Error``.
"""


class VaedemoError(Exception):
    """Base class of every error a user of vaedemo can cause."""


class ConfigError(VaedemoError):
    """A configuration file or override is invalid."""


class AudioError(VaedemoError):
    """Audio could not be decoded, or is unusable (empty, NaN, too long, ...)."""


class CheckpointError(VaedemoError):
    """A checkpoint bundle is missing, of another format version, or does not fit its config."""


class DataError(VaedemoError):
    """A dataset folder holds no usable audio."""
