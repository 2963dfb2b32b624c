"""The demo's bound on the latent search (analysis by synthesis, :mod:`vaedemo.refine`): the Reconstruct tab's
"Search the latent" and the Interpolate tab's "Search the latents of A and B".

Each search step decodes the input about three times, so a request to strangers' server gets at most
:data:`REFINE_STEPS` steps on at most :data:`REFINE_SECONDS` of decoded audio (channels counted; the shipped 4.8 s
loop fits): a few seconds of waiting on 2 cores. 25 steps give 85-92 % of 50 steps' gain (held-out FluidR3 clips,
README "The encoder is the limit"). Beyond the bound the encoder's latents are used, and the page says why.
"""

from __future__ import annotations

import math

from vaedemo.inference import Engine

REFINE_STEPS = 25
REFINE_SECONDS = 6.0
SWITCH = "the latent search switch (refine)"  # how an error names the tick boxes' (and the API's) setting
# The Interpolate tab walks through the latent space, so its search is a maximum a posteriori one: unweighted, the
# one-vector model's searched latents left its flow prior's typical set (-log p(z) 1.14 nats a coordinate against the
# encoder's -0.43 on held-out FluidR3 clips; typicality percentile 50 -> 0.4); weighted by 0.03 they stay in it
# (-0.48) at a cost of 0.006 in log-mel L1 (0.302 against 0.296; the encoder's 0.374). The Reconstruct tab keeps the
# unweighted search: there only the audio counts.
INTERPOLATION_PRIOR_WEIGHT = 0.03


def search_plan(eng: Engine, samples: int, sr: int, channels: int, name: str = "this input",
                by_hits: bool = False) -> tuple[int, str]:  # fmt: skip
    """(steps of latent search, and when none the sentence that says why) for ``name``, ``samples`` x ``channels``
    at ``sr``. ``by_hits``: the input goes through Engine.reconstruct, which decodes a one-shot model's longer input
    hit by hit (one clip per onset: not searched); otherwise through Engine.encode (consecutive clips)."""
    n = math.ceil(samples * eng.sample_rate / sr)
    groups = channels if eng.channels == 1 else math.ceil(channels / 2)  # what the model runs, channel by channel
    if by_hits and eng.mode.per_clip and n >= 2 * eng.clip_length:
        return 0, ("The latent search refines one-shots: a longer performance through a one-shot model was "
                   "reconstructed hit by hit in one pass.")  # fmt: skip
    decoded = math.ceil(n / eng.clip_length) * eng.clip_length if eng.mode.per_clip else n
    seconds = decoded / eng.sample_rate * groups
    if seconds > REFINE_SECONDS:
        return 0, (f"The latent search takes up to {REFINE_SECONDS:g} s of audio (channels counted) and {name} has "
                   f"{seconds:.1f} s: the encoder's latents were used.")  # fmt: skip
    return REFINE_STEPS, ""
