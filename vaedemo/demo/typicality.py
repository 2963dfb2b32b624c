"""Typicality: how likely a sound's latent vector is under the model's learned prior, as a percentile.

Only a flow prior gives this exactly: a RealNVP flow has a tractable density, so ``log p(z)`` of any latent vector is
exact. The reference is the prior itself: the log-densities of :data:`N_REFERENCE` samples drawn from it (computed
once per model). The percentile of ``log p(z)`` among them says how typical ``z`` is *of what the model generates*:
around 50 for a sound like those it learned, near 0 for a sound far outside them. Models with a Gaussian prior or a
latent time series are not scored (their density is not the flow's, or is one per frame).
"""

from __future__ import annotations

import threading
import weakref

import numpy as np
import torch

from vaedemo.audio import to_channels
from vaedemo.inference import Engine

N_REFERENCE = 2000
REFERENCE_SEED = 20_261_123
FAR_OUT = 1.0  # below this percentile a warning is shown

_reference: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # engine -> its reference
_lock = threading.Lock()


def available(eng: Engine) -> bool:
    return bool(eng.mode.per_clip and eng.has_prior_flow)


@torch.inference_mode()
def log_prob(eng: Engine, z: np.ndarray) -> np.ndarray:
    """Exact log p(z) under the prior flow for latents (N, D) -> (N,) in nats."""
    t = torch.as_tensor(np.asarray(z, np.float32).reshape(-1, eng.latent_size), device=eng.device)
    return torch.cat([eng.model.latent.prior_log_prob(t[i : i + 500]) for i in range(0, len(t), 500)]).cpu().numpy()


def reference(eng: Engine) -> np.ndarray:
    """Sorted log p of N_REFERENCE prior samples (temperature 1, with the flow), computed once per engine."""
    with _lock:
        ref = _reference.get(eng)
        if ref is None or ref.size != N_REFERENCE:
            ref = np.sort(log_prob(eng, eng.sample_latents(N_REFERENCE, 1.0, REFERENCE_SEED, True)).astype(np.float64))
            _reference[eng] = ref
    return ref


def percentile(eng: Engine, z: np.ndarray) -> tuple[float, float]:
    """(log p(z), its percentile among the prior's own samples, 0-100) of one latent vector (D,)."""
    lp = float(log_prob(eng, z)[0])
    ref = reference(eng)
    return lp, 100.0 * float(np.searchsorted(ref, lp)) / len(ref)


def score_audio(eng: Engine, audio: np.ndarray, sr: int) -> tuple[float, float] | None:
    """(log p, percentile) of the first clip of audio (samples, channels) at rate sr; None when not available."""
    if not available(eng):
        return None
    first = audio[: int(np.ceil(eng.mode.unit * sr / eng.sample_rate))]  # only the first clip is scored
    z = eng.encode(to_channels(first, eng.channels), sr)
    return percentile(eng, eng.mode.sound_latent(z))


def ordinal(pct: float) -> str:
    """33 -> '33rd', 11 -> '11th', 0.4 -> '0th' (a percentile, rounded)."""
    n = int(round(pct))
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def describe(score: tuple[float, float] | None, what: str = "this sound") -> str:
    """The Markdown shown under the metrics: the percentile, what it was measured against, and a warning if far out."""
    if score is None:
        return "**Typicality:** not available for this model (it needs one latent vector per clip and a flow prior)."
    lp, pct = score
    text = (f"**Typicality: {ordinal(pct)} percentile.** log p(z) = {lp:.1f} nats under the learned prior (a flow: exact "
            f"density), ranked among {N_REFERENCE} of the prior's own samples; about 50 is typical.")  # fmt: skip
    if pct < FAR_OUT:
        text += (f"\n\n⚠️ **{what[:1].upper() + what[1:]} is far outside what the model learned** (less likely than "
                 f"{100 - pct:.0f} % of its own samples): expect the model to bend it towards sounds it knows.")  # fmt: skip
    return text
