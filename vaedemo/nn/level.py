"""A clip's peak level as a latent coordinate of its own (two-stage models with ``model.level_latent``).

Why: in a two-stage model of drum one-shots, the quiet clips (soft velocities, shakers, brushes) encode near the
centre of the learned latent space, and every prior fitted there (the RealNVP prior, a flow-matching prior, a
RealNVP refitted to the posteriors of the clean training clips) draws that region too often: prior samples came out
a median 4-5 dB quieter than the training clips, 4 % of them below -40 dBFS (0.2 % of the training clips are),
while posterior samples of the training clips decoded at the right level. So the level is taken out of what is
learned: every clip is normalised to one peak (the training clips' median peak) before the frozen backbone, the
learned vector describes the sound at that level, and the level is one more coordinate of the latent: the peak in dB mapped
through the training clips' level distribution to a standard normal value (a piecewise-linear quantile map, fitted
once per training run). A standard normal draw of that coordinate is a level drawn from the training clips' level
distribution (between its 1st and 99th percentiles); decoding sets the output's peak to the coordinate's level, so a
reconstruction keeps its input's exact peak and an interpolation moves the level in a straight line in quantiles.
"""

from __future__ import annotations

import math

import torch
from torch import nn

KNOTS = 33  # quantiles of the training clips' peak levels at probabilities 1 % .. 99 %
SILENT_PEAK = 1e-6  # -120 dBFS: the level given to an all-zero clip
DECODED_FLOOR = 1 / 16  # a decoded clip more than 24 dB under the reference peak is not boosted further
LOG_2PI = math.log(2 * math.pi)


def piecewise_linear(x: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """The increasing piecewise-linear map through the knots (xs, ys), extended past both ends along its end segments
    (so it is invertible everywhere: a clip louder than any training clip still gets its own coordinate)."""
    xs, ys = xs.to(x.dtype), ys.to(x.dtype)
    i = torch.searchsorted(xs, x.detach().contiguous()).clamp(1, len(xs) - 1)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (x - x0) * (y1 - y0) / (x1 - x0)


def peak_db(clips: torch.Tensor) -> torch.Tensor:
    """Peak level in dBFS of each clip of (B, C, T) -> (B,)."""
    peak = clips.detach().abs().flatten(1).amax(dim=1).clamp_min(SILENT_PEAK)
    return 20 * torch.log10(peak)


class PeakLevel(nn.Module):
    """The level coordinate: dB <-> standard normal through the training clips' level quantiles (buffers, so they
    travel in the bundle)."""

    def __init__(self):
        super().__init__()
        probabilities = torch.linspace(0.01, 0.99, KNOTS, dtype=torch.float64)
        self.register_buffer("knots_normal", torch.special.ndtri(probabilities).float())
        self.register_buffer("knots_db", torch.linspace(-40.0, 0.0, KNOTS))  # until fit() sees the training clips

    @torch.no_grad()
    def fit(self, levels_db: torch.Tensor) -> None:
        """Set the knots to the quantiles of the training clips' peak levels (dB), kept strictly increasing."""
        if levels_db.numel() < 2:
            raise ValueError("the level map needs the peak levels of at least two training clips")
        p = torch.special.ndtr(self.knots_normal.double())
        q = torch.quantile(levels_db.double().flatten(), p)
        for i in range(1, len(q)):  # ties (many clips at one level) would make the map flat there
            q[i] = torch.maximum(q[i], q[i - 1] + 1e-3)
        self.knots_db.copy_(q.float())

    @property
    def reference_db(self) -> torch.Tensor:
        """The peak clips are normalised to: the training clips' median (the level of coordinate 0), the typical level
        the backbone was trained at (through -6 dBFS its TimGM6mb log-mel L1 rose 0.469 -> 0.519, through -17 dBFS
        to 0.486; part of that is the distance itself, which grows with the level: see the README)."""
        return self.level_db(torch.zeros((), dtype=self.knots_db.dtype, device=self.knots_db.device))

    @property
    def reference_peak(self) -> float:
        return float(10 ** (self.reference_db / 20))

    def coordinate(self, levels_db: torch.Tensor) -> torch.Tensor:
        return piecewise_linear(levels_db, self.knots_db, self.knots_normal)

    def level_db(self, coordinate: torch.Tensor) -> torch.Tensor:
        return piecewise_linear(coordinate, self.knots_normal, self.knots_db)

    def normalise(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, T) -> (the clips at the reference peak, their level coordinates (B,))."""
        db = peak_db(clips)
        gain = self.reference_peak / 10 ** (db / 20)
        return clips * gain.to(clips.dtype)[:, None, None], self.coordinate(db)

    def restore(self, decoded: torch.Tensor, coordinate: torch.Tensor) -> torch.Tensor:
        """Decoded clips (B, C, T) at (about) the reference peak -> the same clips with the peak their coordinate
        gives."""
        target = 10 ** (self.level_db(coordinate) / 20)
        peak = decoded.detach().abs().flatten(1).amax(dim=1).clamp_min(DECODED_FLOOR * self.reference_peak)
        return decoded * (target / peak).to(decoded.dtype)[:, None, None]

    def sample(
        self, n: int, temperature: float, generator: torch.Generator | None, device, dtype: torch.dtype
    ) -> torch.Tensor:
        """n level coordinates from the prior: standard normal (times the temperature), kept within the knots (the
        training clips' 1st to 99th percentile), drawn on the CPU like the other prior noise."""
        u = torch.randn(n, generator=generator, dtype=dtype) * temperature
        return u.clamp(float(self.knots_normal[0]), float(self.knots_normal[-1])).to(device)

    @staticmethod
    def log_prob(coordinate: torch.Tensor) -> torch.Tensor:
        return -0.5 * (coordinate**2 + LOG_2PI)
