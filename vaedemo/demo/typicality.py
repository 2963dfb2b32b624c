"""Typicality: how likely a sound's latent vector is under the model's learned prior, as a percentile.

Only a flow prior gives this exactly: a RealNVP flow has a tractable density, so ``log p(z)`` of any latent vector is
exact. The percentile ranks ``log p(z)`` against a reference: the **training clips** (the log-densities of their
latents, shipped with the bundle in its training-set summary, see :mod:`vaedemo.dataset_summary`), or, for a bundle
without a summary, :data:`N_REFERENCE` samples of the prior itself (computed once per model). Around 50 is a sound as
typical as the reference's; near 0 one far outside it. Models with a Gaussian prior or a latent time series are not
scored (their density is not the flow's, or is one per frame).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np

from vaedemo.audio import to_channels
from vaedemo.dataset_summary import prior_log_prob, typicality_percentiles
from vaedemo.inference import Engine

from .training_set import summary

N_REFERENCE = 2000
REFERENCE_SEED = 20_261_123
FAR_OUT = 1.0  # below this percentile a warning is shown

_reference: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # engine -> its Reference
_lock = threading.Lock()


@dataclass(frozen=True)
class Reference:
    """Sorted log p of the reference latents and what they are ('the 456 training clips')."""

    log_probs: np.ndarray
    against: str
    training: bool

    def __len__(self) -> int:
        return len(self.log_probs)


@dataclass(frozen=True)
class Score:
    log_p: float
    percentile: float
    against: str  # what the percentile ranks against


def available(eng: Engine) -> bool:
    return bool(eng.mode.per_clip and eng.has_prior_flow)


def log_prob(eng: Engine, z: np.ndarray) -> np.ndarray:
    """Exact log p(z) under the prior flow for latents (N, D) -> (N,) in nats."""
    return prior_log_prob(eng, z)


def _prior_reference(eng: Engine) -> Reference:
    z = eng.sample_latents(N_REFERENCE, 1.0, REFERENCE_SEED, True)
    return Reference(np.sort(log_prob(eng, z)), f"{N_REFERENCE} of the prior's own samples", False)


def reference(eng: Engine) -> Reference:
    """The training clips' log p when the bundle ships a summary with them, else the prior's own samples' (both
    sorted; computed or read once per engine)."""
    with _lock:
        ref = _reference.get(eng)
        if ref is None:
            s = summary(eng)
            if s is not None and s.reference is not None and len(s.reference):
                ref = Reference(np.sort(s.reference), f"the {len(s.reference)} training clips", True)
            else:
                ref = _prior_reference(eng)
            _reference[eng] = ref
    return ref


def percentile(eng: Engine, z: np.ndarray) -> Score:
    """log p(z) of one latent vector (D,) and its percentile (0-100) in the model's reference."""
    lp = float(log_prob(eng, z)[0])
    ref = reference(eng)
    return Score(lp, float(typicality_percentiles(ref.log_probs, [lp])[0]), ref.against)


def score_audio(eng: Engine, audio: np.ndarray, sr: int) -> Score | None:
    """The Score of the first clip of audio (samples, channels) at rate sr; None when not available."""
    if not available(eng):
        return None
    first = audio[: int(np.ceil(eng.mode.unit * sr / eng.sample_rate))]  # only the first clip is scored
    z = eng.encode(to_channels(first, eng.channels), sr)
    return percentile(eng, eng.mode.sound_latent(z))


def ordinal(pct: float) -> str:
    """33 -> '33rd', 11 -> '11th', 0.4 -> '0th' (a percentile, rounded)."""
    n = int(round(pct))
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def describe(score: Score | None, what: str = "this sound") -> str:
    """The Markdown shown under the metrics: the percentile, what it was measured against, and a warning if far out."""
    if score is None:
        return "**Typicality:** not available for this model (it needs one latent vector per clip and a flow prior)."
    text = (f"**Typicality: {ordinal(score.percentile)} percentile** of {score.against}. log p(z) = {score.log_p:.1f} "
            "nats under the learned prior (a flow: exact density); about 50 is typical.")  # fmt: skip
    if score.percentile < FAR_OUT:
        text += (f"\n\n⚠️ **{what[:1].upper() + what[1:]} is far outside what the model learned** (less likely than "
                 f"{100 - score.percentile:.0f} % of {score.against}): expect the model to bend it towards sounds it "
                 "knows.")  # fmt: skip
    return text
