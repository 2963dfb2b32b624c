"""Engine: inference on plain numpy arrays — reconstruct, encode, decode, sample, interpolate.

Audio in and out is float32 (samples, channels) (1-D input is taken as mono). ``reconstruct`` accepts any length,
sample rate and channel count and returns the same shape at the same rate: mono models treat each channel on its own,
stereo models take channel pairs (a mono input comes back as stereo). Temporal models process long audio in
overlapping chunks whose margins cover the receptive field, so the result equals whole-signal processing (no seams);
one-vector-per-clip models go clip by clip, and inputs of two clips or more hit by hit (cut at their onsets, see
:mod:`vaedemo.onsets`). Everything is deterministic: reconstruction uses the posterior mean, sampling
uses a seeded generator.
"""

from __future__ import annotations

import copy
import math
import reprlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import (
    MAX_SECONDS_DEFAULT,
    as_samples,
    check_audio,
    check_channels,
    is_number,
    real_array,
    resample,
    to_channels,
)
from .bundle import Bundle, load, torch_device
from .errors import VaedemoError
from .nn.blocks import keep_rows_weights
from .nn.streaming import StreamingVAE, decoder_lookahead, encoder_lookahead, script
from .onsets import cover_long_gaps, detect_onsets, hit_segments, kept_lengths, lay_hits
from .refine import refined_reconstruction, searched_latents

MAX_REFINE_STEPS = 1000  # a bound on the search a caller can ask for (each step is about three decoder passes)
# Bounds on what one call makes, refused in one sentence before anything is allocated (sample_latents(10**9) and a
# decode of 10**7 frames asked torch for terabytes): sounds at once (prior samples, a path's steps; the demo samples
# at most 8, its typicality 2000), and their audio in all (10000 one-second one-shots: 1.8 GB of float32 at 44.1 kHz);
# one sound is at most MAX_SECONDS_DEFAULT long, the longest input check_audio accepts.
MAX_SOUNDS = 10_000
MAX_TOTAL_SECONDS = 10_000
MAX_TEMPERATURE = 10.0  # the demo's API takes up to 3; at 10 a prior sample is already noise, at 1e20 it was NaN
MIN_CHUNK_SECONDS = 0.1  # below it a temporal model's chunks are mostly margin (a negative value was 70 times slower)

STREAM_PIECE_HOPS = 128  # a stream chunk goes through the model this many hops at a time (1.5 s at 44.1 kHz): in
# one pass a chunk's memory grew with it (60 s of mono: +1.3 GB; 10 s of 16 channels: +2.2 GB)
HITS_PER_BLOCK = 64  # a performance's hits go through a one-vector model this many at a time, so that its memory
# stays bounded: a clip each, all at once, is 1 GB per channel for 6000 hits (600 s of 10 hits a second)


class TooManyHitsError(VaedemoError):
    """A performance holds more hits than the caller's ``max_hits`` (see :meth:`Engine.reconstruction`)."""

    def __init__(self, hits: int, limit: int):
        self.hits, self.limit = hits, limit
        super().__init__(f"this performance holds {hits} hits, more than the {limit} allowed: a one-vector model "
                         "rebuilds it hit by hit, a clip each (a shorter excerpt has fewer).")  # fmt: skip


def check_refine_option(steps: int, flag: str = "--refine") -> None:
    """A command line's refinement steps, in one sentence when out of bounds."""
    if not 0 <= steps <= MAX_REFINE_STEPS:
        raise VaedemoError(f"{flag} must be from 0 to {MAX_REFINE_STEPS} steps, got {steps}.")


def _whole(value) -> bool:
    """A whole number as an argument (an int or numpy integer; not a bool, a float or a string)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_refine(refine) -> None:
    # a bool is an int to Python, and True would search for one step: the demo's tick box means its own step count
    if not _whole(refine) or not 0 <= refine <= MAX_REFINE_STEPS:
        raise VaedemoError(f"refine must be a whole number of steps from 0 to {MAX_REFINE_STEPS}, got {refine!r}.")


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation along the last axis (lerp where the vectors are nearly parallel)."""
    na = np.linalg.norm(a, axis=-1, keepdims=True)
    nb = np.linalg.norm(b, axis=-1, keepdims=True)
    cos = np.sum(a * b, axis=-1, keepdims=True) / np.maximum(na * nb, 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    so = np.sin(omega)
    safe = so > 1e-6
    wa = np.where(safe, np.sin((1 - t) * omega) / np.where(safe, so, 1.0), 1 - t)
    wb = np.where(safe, np.sin(t * omega) / np.where(safe, so, 1.0), t)
    return (wa * a + wb * b).astype(np.float32)


def check_latents(z, size: int, ranks: tuple[int, ...]) -> np.ndarray:
    """Latents at the numpy edge as float32, or one sentence: ``ranks`` dimensions (a vector (D,), rows (n, D), sounds
    of frames (n, frames, D)), the last ``size`` long, none empty, every value finite (NaN decoded to NaN audio; an
    empty array, a scalar or another rank was a traceback from deep inside, and a 3-D array was flattened into one
    sound)."""
    try:
        z = np.asarray(z, np.float32)
    except (TypeError, ValueError):
        raise VaedemoError("latents must be an array of numbers.") from None
    if z.ndim not in ranks:
        shapes = " or ".join({1: "(D,)", 2: "(n, D)", 3: "(n, frames, D)"}[r] for r in ranks)
        raise VaedemoError(f"latents must be shaped {shapes} with D = {size}, got shape {z.shape}.")
    if z.size == 0:
        raise VaedemoError(f"latents must not be empty, got shape {z.shape}.")
    if z.shape[-1] != size:
        raise VaedemoError(f"latents must have {size} dimensions, got {z.shape[-1]}.")
    if not np.isfinite(z).all():
        raise VaedemoError("latents contain NaN or infinite values.")
    return z


# ways from one latent to another: a slerp in the prior's base space (Engine.path_latents), or in the latent space
METHODS = ("prior", "slerp", "lerp")


def path_positions(steps: int) -> np.ndarray:
    """The positions of ``steps`` evenly spaced steps from 0 to 1 inclusive (2 to :data:`MAX_SOUNDS`), or one
    sentence."""
    if not _whole(steps) or not 2 <= steps <= MAX_SOUNDS:
        raise VaedemoError(f"an interpolation needs a whole number of 2 to {MAX_SOUNDS} steps, got {steps!r}.")
    return np.linspace(0.0, 1.0, steps)


def checked_positions(positions) -> np.ndarray:
    """Positions on a path as float64 (n,), each from 0 to 1, 1 to :data:`MAX_SOUNDS` of them, or one sentence (text
    was numpy's ValueError, and None read as NaN)."""
    wanted = f"positions on a path must be a list of 1 to {MAX_SOUNDS} numbers from 0 to 1"
    try:
        if positions is None or isinstance(positions, (str, bytes)):  # (numpy reads None as NaN, "0.5" as 0.5)
            raise TypeError
        p = np.asarray(positions, np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise VaedemoError(f"{wanted}, got {reprlib.repr(positions)}.") from None
    if not 1 <= len(p) <= MAX_SOUNDS:
        raise VaedemoError(f"{wanted}, got {len(p)} of them.")
    if not np.all((p >= 0) & (p <= 1)):  # (NaN fails both)
        raise VaedemoError(f"{wanted}, got {reprlib.repr(p.tolist())}.")
    return p


def latents_between(a: np.ndarray, b: np.ndarray, positions, method: str = "slerp") -> np.ndarray:
    """The latents at ``positions`` (each in [0, 1]) from a to b, 'slerp' or 'lerp' in the space they are given in
    (the engine's 'prior' is a slerp in the prior's base space), stacked; temporal latents (frames, D) are interpolated
    frame by frame and cut to the shorter of the two."""
    if method not in ("slerp", "lerp"):
        raise VaedemoError(f"interpolation method must be 'slerp' or 'lerp', got '{method}'.")
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.shape[-1] != b.shape[-1]:
        raise VaedemoError(f"latents of different sizes cannot be interpolated ({a.shape[-1]} vs {b.shape[-1]}).")
    if a.ndim == 2:
        n = min(a.shape[0], b.shape[0])
        a, b = a[:n], b[:n]
    out = []
    for t in positions:
        out.append(slerp(a, b, float(t)) if method == "slerp" else ((1 - t) * a + t * b).astype(np.float32))
    return np.stack(out)


@dataclass(frozen=True)
class Reconstruction:
    """:meth:`Engine.reconstruction`'s result: the audio (samples, channels), and how many hits a one-shot model cut
    a performance into (None where it was not cut: a temporal model, or an input shorter than two clips)."""

    audio: np.ndarray
    hits: int | None


class Stream:
    """Chunks in, chunks out, through :class:`~vaedemo.nn.streaming.StreamingVAE` (see :meth:`Engine.stream`).

    ``latency``: samples by which the output lags the input (a causal model's own lag, plus a centred model's
    look-ahead)."""

    def __init__(self, engine: Engine):
        self.engine, self.hop = engine, engine.hop
        self._vae, self.latency = engine._scripted_stream()
        self._channels: int | None = None
        self._noise = torch.Generator().manual_seed(0)  # latent_noise's draws (on the CPU: any device's stream)

    def reset(self) -> None:
        self._vae.reset()
        self._channels = None
        self._noise.manual_seed(0)

    def process(self, chunk: np.ndarray, latent_scale: float = 1.0, latent_noise: float = 0.0) -> np.ndarray:
        """float32 (samples, channels) at the model rate, samples a multiple of the hop -> the same shape.

        ``latent_scale`` and ``latent_noise`` bend the latents between the encoder and the decoder, as nn~ patches
        do: each frame's latent times the scale (0: the prior's centre), plus Gaussian noise of that standard
        deviation drawn afresh for every value (from the stream's own generator, seeded 0 at its start)."""
        for name, value in (("latent_scale", latent_scale), ("latent_noise", latent_noise)):
            if not is_number(value) or not 0 <= value < math.inf:
                raise VaedemoError(f"{name} must be a number from 0 up, got {value!r}.")
        x = real_array(chunk, "a stream chunk")
        if not x.size:  # nothing in, nothing out (as_samples refuses it as empty), and the channel count stays open
            if x.ndim > 2:
                raise VaedemoError(f"a stream chunk must be 1-D (samples) or 2-D (samples, channels), got {x.shape}.")
            return np.zeros((0, x.shape[1] if x.ndim == 2 else 1), np.float32)
        x = as_samples(x, "a stream chunk")  # before the caches: one NaN there would make every later chunk NaN
        check_channels("a stream chunk", x.shape[1])  # as reconstruct reads them (512 channels went through)
        if x.shape[0] % self.hop:
            raise VaedemoError(f"a stream chunk must hold a multiple of {self.hop} samples, got {x.shape[0]}.")
        if self._channels not in (None, x.shape[1]):
            raise VaedemoError(f"a stream keeps its channel count ({self._channels}); reset() it to change.")
        self._channels = x.shape[1]
        with torch.inference_mode():
            x = self.engine._tensor(self.engine._groups(x))
            step, noise, pieces = STREAM_PIECE_HOPS * self.hop, None, []
            for start in range(0, x.shape[-1], step):  # (the caches make the pieces' output the whole chunk's)
                piece = x[..., start : start + step]
                if latent_scale == 1 and latent_noise == 0:
                    pieces.append(self._vae(piece))
                    continue
                z = latent_scale * self._vae.encode(piece)
                if latent_noise:  # drawn for the whole chunk at once: the same values however it is cut
                    if noise is None:
                        shape = (*z.shape[:-1], x.shape[-1] // self.hop)
                        noise = torch.randn(shape, generator=self._noise, dtype=z.dtype).to(z.device)
                    z = z + latent_noise * noise[..., start // self.hop : start // self.hop + z.shape[-1]]
                pieces.append(self._vae.decode(z))
            y = torch.cat(pieces, dim=-1)
        return np.ascontiguousarray(self.engine._ungroup(y.cpu().numpy(), self._channels), dtype=np.float32)


def cost_batches(frames: np.ndarray, size: int) -> list[np.ndarray]:
    """The indices of clips that cost ``frames[i]`` frames each, in batches of ``size`` that run together, fewest
    frames first: a batch runs as far as its longest clip, so clips of similar costs go together. The 18 hits of the
    shipped drum loop, decoded in their own order, ran 70x real time, sorted by what each keeps 78x (medians of five
    runs, each the median of 30). Batches split further by cost were slower: a batch of two clips took about as long
    as one (two threads, one clip keeps one of them idle part of the time), and each forward has a fixed cost."""
    order = np.argsort(frames, kind="stable")
    return [order[i : i + size] for i in range(0, len(order), size)]


def _check_engine_options(chunk_seconds, batch) -> None:
    """The Engine's numbers, in one sentence each: batch=0 and -1 failed only at the first call (range()'s and
    torch.cat's errors), chunk_seconds=NaN too, and a negative one ran in chunks of one latent frame."""
    if not _whole(batch) or batch < 1:
        raise VaedemoError(f"batch must be a whole number of at least 1, got {batch!r}.")
    if not is_number(chunk_seconds) or not MIN_CHUNK_SECONDS <= chunk_seconds < math.inf:
        raise VaedemoError(f"chunk_seconds must be a finite number of at least {MIN_CHUNK_SECONDS}, got {chunk_seconds!r}.")


class Engine:
    """Inference over one bundle. ``Engine("checkpoints/NAME")`` or ``Engine(vaedemo.load(...))``; ``device`` one
    that torch can use here, ``chunk_seconds`` (at least :data:`MIN_CHUNK_SECONDS`) a temporal model's chunk,
    ``batch`` (at least 1) the clips or sounds per forward."""

    def __init__(self, bundle: Bundle | str | Path, device: str = "cpu", chunk_seconds: float = 8.0, batch: int = 16):
        device = torch_device(device)
        _check_engine_options(chunk_seconds, batch)
        self.bundle = bundle if isinstance(bundle, Bundle) else load(bundle, device=device)
        # an Engine only infers: its convs keep their weights' channels-last copies (nn.blocks.keep_rows_weights)
        self.model = keep_rows_weights(self.bundle.model.to(device).eval())
        self.device = device
        cfg = self.bundle.config
        self.config = cfg
        self.mode = self.model.mode
        self.sample_rate = cfg.sample_rate
        self.channels = cfg.channels
        self.latent_size = self.mode.latent_size  # the latent at the numpy edge (a level latent adds one coordinate)
        self.hop = cfg.hop
        self.clip_length = cfg.clip_length
        self.has_prior_flow = cfg.prior_flow_layers > 0
        self.batch = int(batch)
        self._stream_template: tuple[torch.jit.ScriptModule, int] | None = None  # scripted once, see _scripted_stream
        self._stream_lock = threading.Lock()
        if self.mode.per_clip:  # clips are independent: `batch` of them (of one channel group) per forward
            # how far past the samples wanted the decoder reads (samples), and how far the encoder reads back
            # (samples) and ahead (latent frames)
            self.decoder_lookahead_samples = decoder_lookahead(self.model)
            self.encoder_reach_samples = self.model.encoder_lookbehind
            self.encoder_lookahead_frames = encoder_lookahead(self.model)
            self._silent_map: torch.Tensor | None = None  # the encoder's map of a silent clip, once a tail needs it
        else:  # a temporal model goes in chunks that start where the decoder's position-dependent parts start over
            unit = math.lcm(self.mode.unit, self.model.position_period)
            self.margin = math.ceil(self.mode.chunk_margin(self.model.receptive_field) / unit) * unit
            self.chunk = max(unit, int(chunk_seconds * self.sample_rate) // unit * unit)

    # ------------------------------------------------------------------------------------------------ helpers
    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

    def _groups(self, x: np.ndarray) -> np.ndarray:
        """(samples, C_in) -> (G, C_model, samples): the channel groups the model processes."""
        c_in = x.shape[1]
        if self.channels == 1:
            return x.T[:, None, :]
        if c_in == 1:
            return np.repeat(x.T[None], 2, axis=1)
        if c_in % 2:
            x = np.concatenate([x, x[:, -1:]], axis=1)
        return x.T.reshape(-1, 2, x.shape[0])

    def _ungroup(self, y: np.ndarray, c_in: int) -> np.ndarray:
        """(G, C_model, samples) -> (samples, C_out)."""
        if self.channels == 1:
            return y[:, 0, :].T
        if c_in == 1:
            return y[0].T
        flat = y.reshape(-1, y.shape[-1]).T
        if c_in % 2:
            flat = np.concatenate([flat[:, : c_in - 1], flat[:, c_in - 1 : c_in + 1].mean(1, keepdims=True)], axis=1)
        return flat

    def _forward(self, x: torch.Tensor, refine: int, offset: int = 0) -> torch.Tensor:
        """The model's deterministic reconstruction of (B, C, T), which starts at sample ``offset`` of the signal (a
        noise branch draws its noise there); with ``refine`` > 0 from latents refined by that many steps of
        analysis by synthesis (:mod:`vaedemo.refine`)."""
        if refine:
            return refined_reconstruction(self.model, x, refine, offset=offset)
        return self.model(x, sample=False, offset=offset).audio

    @torch.inference_mode()
    def _run(self, x: torch.Tensor, refine: int = 0) -> torch.Tensor:
        """Deterministic reconstruction of channel groups (G, C, T) through a temporal model, any T, in chunks whose
        margins make the result equal whole-signal processing (refined latents are searched chunk by chunk: close to
        the whole signal's, not equal)."""
        t, lag = x.shape[-1], self.model.delay  # a causal model's output lags: run past the end, shift it back
        x = self.mode.pad(torch.nn.functional.pad(x, (0, lag)) if lag else x)
        out = torch.empty_like(x)
        for s, e, a, b in self._chunks(x.shape[-1]):
            out[..., s:e] = self._forward(x[..., a:b], refine, offset=a)[..., s - a : e - a]
        return out[..., lag : lag + t]

    def _reconstruct_channels(self, x: np.ndarray, refine: int = 0) -> np.ndarray:
        """(samples, C_in) at the model rate -> (samples, C_out), every channel group through the model: a temporal
        one's in chunks, a one-vector model's clip by clip (the last one's silent tail neither encoded nor decoded
        beyond what the input's end needs, see :meth:`_through_clips`)."""
        if self.mode.per_clip:
            length = self.clip_length
            segments = [(s, min(s + length, len(x))) for s in range(0, len(x), length)]
            ends = np.array([e - s for s, e in segments])  # every clip whole but the last
            return np.concatenate(self._through_clips(self._clips(x, segments), ends, ends, refine))
        groups = self._groups(x)  # one group at a time through the chunks: in a batch, each chunk's work held them all
        return self._ungroup(np.concatenate([self._run(self._tensor(g[None]), refine).cpu().numpy() for g in groups]),
                             x.shape[1])  # fmt: skip

    def _reconstruct_hits(self, x: np.ndarray, refine: int = 0, max_hits: int | None = None) -> tuple[np.ndarray, int]:
        """A one-shot model's reconstruction of a longer input, and into how many hits it was cut: cut at its onsets,
        each hit encoded as a one-shot, the decoded hits laid back at their onsets (see :mod:`vaedemo.onsets`). Each
        hit is decoded only as far as the loop keeps it (to its fade after the next onset), and its silent tail (the
        clip past the next onset) encoded as a silent clip's: in a loop, a fraction of a clip each. The hits go
        :data:`HITS_PER_BLOCK` at a time; more than ``max_hits`` of them: :class:`TooManyHitsError`, before any is
        decoded."""
        length = self.clip_length
        onsets = self._hit_starts(x)
        if max_hits is not None and len(onsets) > max_hits:
            raise TooManyHitsError(len(onsets), max_hits)
        segments = hit_segments(onsets, len(x), length)
        ends = np.array([e - s for s, e in segments])  # each clip's signal: zeros from there on
        kept = kept_lengths(onsets, len(x), length, self.sample_rate)
        hits = []
        for block in (slice(i, i + HITS_PER_BLOCK) for i in range(0, len(segments), HITS_PER_BLOCK)):
            hits += self._through_clips(self._clips(x, segments[block]), ends[block], kept[block], refine)
        return lay_hits(hits, onsets, len(x), self.sample_rate), len(onsets)

    def _hit_starts(self, x: np.ndarray) -> np.ndarray:
        """Where a one-shot model's reconstruction of ``x`` (samples, C) at the model rate cuts it: its onsets, and a
        cut every clip where a long stretch without one still sounds."""
        return cover_long_gaps(detect_onsets(x, self.sample_rate), x, self.clip_length)

    def hits(self, audio: np.ndarray, sr: int) -> int | None:
        """How many hits :meth:`reconstruct` cuts ``audio`` into: None where it is not cut (a temporal model, or an
        input shorter than two clips, which is reconstructed clip by clip)."""
        x = check_audio(audio, sr)  # (bad audio or rate is refused whatever the model)
        if not self.mode.per_clip:
            return None
        x = resample(x, sr, self.sample_rate)
        return len(self._hit_starts(x)) if len(x) >= 2 * self.clip_length else None

    def _clips(self, x: np.ndarray, segments: list[tuple[int, int]]) -> list[np.ndarray]:
        """The (start, end) segments of ``x`` (samples, C), each zero-padded to one clip."""
        return [np.pad(x[s:e], ((0, self.clip_length - (e - s)), (0, 0))) for s, e in segments]

    def _through_clips(self, clips: list[np.ndarray], ends: np.ndarray, kept: np.ndarray, refine: int) -> list[np.ndarray]:
        """One-shot clips (clip_length, C_in), each silent from ``ends[i]`` on -> the first ``kept[i]`` samples of
        each one's reconstruction, (kept[i], C_out): every channel group's clips encoded (:meth:`_clip_latents`) and
        decoded (:meth:`_decoded_clips`) only as far as those samples need."""
        groups = self._tensor(np.stack([self._groups(clip) for clip in clips], axis=1))  # (G, clips, C_model, clip)
        with torch.inference_mode():
            decoded = [self._decoded_clips(self._clip_latents(group, ends, refine), kept) for group in groups]
        return [self._ungroup(np.stack(parts), clips[0].shape[1]) for parts in zip(*decoded)]

    def _clip_latents(self, clips: torch.Tensor, ends: np.ndarray, refine: int) -> torch.Tensor:
        """Latents (clips, D) of one channel group's clips (clips, C, clip_length), each silent from ``ends[i]`` on:
        clips of similar lengths encoded together, each batch's map computed only as far as its longest signal
        reaches (:meth:`_map_of_silent_tails`); with ``refine``, searched from the whole clips' latents."""
        if refine:
            return self._searched_clips(clips, refine)
        batches = cost_batches(np.array([self._encoded_frames(int(end)) for end in ends]), self.batch)
        z = [self.model.encode(clips[torch.from_numpy(rows)], self._map_of_silent_tails(int(ends[rows].max())))
             for rows in batches]  # fmt: skip
        return torch.cat(z)[torch.from_numpy(np.argsort(np.concatenate(batches)))]  # back in the clips' order

    def _silent_from_frame(self, end: int) -> int:
        """The first encoder frame whose inputs are all silent in a clip silent from sample ``end`` on."""
        return -(-(end + self.encoder_reach_samples) // self.hop)

    def _encoded_frames(self, end: int) -> int:
        """How many frames of the encoder's map :meth:`_map_of_silent_tails` computes for a clip silent from ``end``
        on (its cost)."""
        return min(self.mode.frames_per_clip, self._silent_from_frame(end) + self.encoder_lookahead_frames)

    def _decoded_frames(self, kept: int) -> int:
        """How many latent frames the decoder runs over for the first ``kept`` samples of a clip (its cost)."""
        return min(self.mode.frames_per_clip, -(-(kept + self.decoder_lookahead_samples) // self.hop))

    def _map_of_silent_tails(self, end: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """What computes the encoder's conv map of one-shot clips that are silent from sample ``end`` on: past the
        encoder's reach from ``end``, a frame has seen nothing but zeros up to the clip's end, so it is the silent
        clip's; only the frames before it are computed, from as much audio as they read ahead."""
        model, cut = self.model, self._silent_from_frame(end)
        if cut >= self.mode.frames_per_clip:
            return model.encoder_map
        samples = min(self.clip_length, (cut + self.encoder_lookahead_frames) * self.hop)
        if self._silent_map is None:  # (two requests at once may both compute it: the same values)
            weight = next(model.parameters())
            silence = torch.zeros(1, self.channels, self.clip_length, dtype=weight.dtype, device=weight.device)
            self._silent_map = model.encoder_map(silence)

        def map_of(clips: torch.Tensor) -> torch.Tensor:
            computed = model.encoder_map(clips[..., :samples])[..., :cut]
            return torch.cat([computed, self._silent_map[..., cut:].expand(len(clips), -1, -1)], dim=-1)

        return map_of

    def _decoded_clips(self, z: torch.Tensor, kept: np.ndarray) -> list[np.ndarray]:
        """One channel group's latents (clips, D) -> the first ``kept[i]`` samples of each one's decode, (C, kept[i]):
        clips that keep similar lengths decoded together (:func:`cost_batches`), each batch only as many latent
        frames as its longest needs (its samples plus the decoder's look-ahead): those samples are then the whole
        clip's."""
        frames = np.array([self._decoded_frames(int(n)) for n in kept])
        out = [None] * len(z)
        for rows in cost_batches(frames, self.batch):
            y = self.model.decode(z[torch.from_numpy(rows)], int(frames[rows].max())).cpu().numpy()
            for i, clip in zip(rows.tolist(), y):
                out[i] = clip[:, : kept[i]]
        return out

    def stream(self) -> Stream:
        """A live stream through a temporal model: ``process(chunk)`` with float32 (samples, channels) chunks at the
        model rate, samples a multiple of the hop; the output lags the input by ``latency`` samples (a causal
        model's PQMF lag and latent frame; a centred model's look-ahead, its right receptive field).

        One-vector-per-clip models do not stream: their one latent summarises the whole clip, so nothing can be
        decoded before the clip has ended."""
        try:
            return Stream(self)
        except ValueError:  # StreamingVAE decides which models stream (those with a latent time series)
            raise VaedemoError(
                f"{self.bundle.name} cannot stream: it encodes one latent vector per clip, which needs the whole clip "
                "before anything can be decoded (streaming needs a model with a latent time series)."
            ) from None

    def __getstate__(self) -> dict:
        """A copy or a pickle of an Engine leaves out its lock and its scripted stream (made again when needed)."""
        state = self.__dict__.copy()
        state["_stream_template"], state["_stream_lock"] = None, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._stream_lock = threading.Lock()

    def _scripted_stream(self) -> tuple[torch.jit.ScriptModule, int]:
        """(a fresh scripted StreamingVAE of the model, its latency in samples). TorchScript runs the ~100 small ops of
        a chunk at about half the Python interpreter's overhead, but scripting takes ~0.14 s of the interpreter (and
        one module at a time in the process, see :func:`~vaedemo.nn.streaming.script`): the model is scripted once and
        each stream gets a copy of its own (5 ms; caches of its own). Raises ValueError for a model that cannot
        stream."""
        with self._stream_lock:
            if self._stream_template is None:
                vae = StreamingVAE(self.model).to(self.device)
                self._stream_template = (script(vae), vae.latency)
            template, latency = self._stream_template
            return copy.deepcopy(template), latency

    def prepare(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """Validate and resample to the model rate, keeping the channels: (samples, C_in)."""
        x = check_audio(audio, sr)
        return resample(x, sr, self.sample_rate)

    # ------------------------------------------------------------------------------------------------ public API
    def reconstruct(self, audio: np.ndarray, sr: int, refine: int = 0) -> np.ndarray:
        """Encode and decode; returns float32 (samples, channels) at ``sr`` with exactly the input's length.

        ``refine`` > 0: analysis by synthesis (:mod:`vaedemo.refine`), each latent searched for that many steps
        against its own decoded audio, starting from the encoder's; closer to the input, about ``3 x refine`` times
        the work of a plain reconstruction (a loop through a one-shot model about ``6.5 x refine``: the search decodes
        each hit's whole clip, the plain pass only as much as the loop keeps)."""
        return self.reconstruction(audio, sr, refine).audio

    def reconstruction(self, audio: np.ndarray, sr: int, refine: int = 0, max_hits: int | None = None) -> Reconstruction:
        """:meth:`reconstruct`'s audio with the number of hits it was cut into (what :meth:`hits` counts, without
        finding the onsets a second time). ``max_hits``: a bound on a performance's hits through a one-vector model
        (its work grows with them; a server's requests should be bounded), beyond which :class:`TooManyHitsError` is
        raised before anything is decoded."""
        _check_refine(refine)
        if max_hits is not None and not (_whole(max_hits) and max_hits >= 0):
            raise VaedemoError(f"max_hits must be a whole number from 0 up (or None: no bound), got {max_hits!r}.")
        x = check_audio(audio, sr)
        n, c_in = x.shape
        xm = resample(x, sr, self.sample_rate)
        hits = None
        if self.mode.per_clip and len(xm) >= 2 * self.clip_length:  # a performance through a one-shot model
            # (a one-shot with a short tail past one clip stays whole: cutting it at the inner transients of a snare
            # or a flam splits one hit into several)
            y, hits = self._reconstruct_hits(xm, refine, max_hits)
        else:
            y = self._reconstruct_channels(xm, refine)
        y = resample(y, self.sample_rate, sr)
        if y.shape[0] < n:
            y = np.pad(y, ((0, n - y.shape[0]), (0, 0)))
        return Reconstruction(np.ascontiguousarray(y[:n], dtype=np.float32), hits)

    @torch.inference_mode()
    def encode(self, audio: np.ndarray, sr: int, refine: int = 0, prior_weight: float = 0.0) -> np.ndarray:
        """Posterior-mean latents of audio converted to the model's channels, in the mode's numpy layout:
        (clips, D) for one vector per clip_length samples, (frames, D) for a latent time series.

        ``refine`` > 0: those latents searched for that many steps, as :meth:`reconstruct` searches them (clip by
        clip, or a time series chunk by chunk). ``prior_weight`` > 0 makes it a maximum
        a posteriori search (:func:`vaedemo.refine.refine_latents`): latents meant for the latent space
        (interpolation, maps) stay where the prior has mass; an unweighted search leaves it."""
        _check_refine(refine)
        if not is_number(prior_weight) or not 0 <= prior_weight < math.inf:
            raise VaedemoError(f"prior_weight must be a number from 0 up, got {prior_weight!r}.")
        x = self._tensor(to_channels(self.prepare(audio, sr), self.channels).T[None])
        if not refine:
            return self.mode.to_numpy(self._encode_in_pieces(x))
        return self.mode.to_numpy(self._searched_in_pieces(x, refine, prior_weight))

    def _searched_in_pieces(self, x: torch.Tensor, refine: int, prior_weight: float) -> torch.Tensor:
        """The searched latents of one input (1, C, T), as reconstruct searches them: a one-vector model's clips each
        against its own audio, ``batch`` at a time (the same latents as all at once); a time series chunk by chunk,
        each chunk searched with its margins: as close to the input by the search's distance as a search of the whole
        (a tiny model's test: 2.399 against 2.403), not the same latents. A search of the whole input held its
        autograd graph: 18-23 MB a second of audio (4.4 GB for 4 minutes)."""
        if self.mode.per_clip:
            return self._searched_clips(self.mode.fold(self.mode.pad(x)), refine, prior_weight)
        # a causal model's decode lags its input: the search compares the input with the decode of the input padded by
        # the lag, as reconstruct's does (_run); unpadded, it compared only the first t - lag samples (none of a
        # short input: a reshape error). The frames past the input's own are left out, as encode without search has
        # none.
        frames = -(-x.shape[-1] // self.hop)
        x = torch.nn.functional.pad(x, (0, self.model.delay))  # (the last chunk's end: the input's, not a frame's)
        z = self._latents_in_chunks(x, lambda piece, offset: searched_latents(self.model, piece, refine,
                                                                              prior_weight=prior_weight, offset=offset))
        return z[..., :frames]

    def _searched_clips(self, clips: torch.Tensor, refine: int, prior_weight: float = 0.0) -> torch.Tensor:
        """The searched latents (clips, D) of one-shot clips (clips, C, clip_length), each against its own audio,
        ``batch`` at a time (each clip's search is its own: the same latents as all at once)."""
        return torch.cat([searched_latents(self.model, clips[i : i + self.batch], refine, prior_weight=prior_weight)
                          for i in range(0, len(clips), self.batch)])  # fmt: skip

    def _latents_in_chunks(self, x: torch.Tensor, latents_of: Callable[[torch.Tensor, int], torch.Tensor]) -> torch.Tensor:
        """A time series' latents (1, D, frames) of audio (1, C, T), each chunk of :meth:`_chunks` given with its
        margins to ``latents_of(piece, offset)`` and its own frames kept (the last chunk's partial frame too)."""
        hop = self.hop
        return torch.cat([latents_of(x[..., a:b], a)[..., (s - a) // hop : -(-(e - a) // hop)]
                          for s, e, a, b in self._chunks(x.shape[-1])], dim=-1)  # fmt: skip

    @torch.inference_mode()
    def _encode_in_pieces(self, x: torch.Tensor) -> torch.Tensor:
        """The model's latents of one input (1, C, T), as ``model.encode`` gives them, in pieces whose memory does not
        grow with the input: a one-vector model's clips ``batch`` at a time, a time series in chunks whose margins
        cover the encoder's reach (in one pass, 300 s took 0.5 GB more, in proportion to the length)."""
        if self.mode.per_clip:
            step = self.batch * self.clip_length
            return torch.cat([self.model.encode(x[..., s : s + step]) for s in range(0, x.shape[-1], step)])
        return self._latents_in_chunks(self.mode.pad(x), lambda piece, offset: self.model.encode(piece))

    def _chunks(self, total: int) -> list[tuple[int, int, int, int]]:
        """(start, end, start with margin, end with margin) of each chunk of a temporal model's signal of ``total``
        samples; one chunk where the margins would cover it all."""
        if total <= self.chunk + 2 * self.margin:
            return [(0, total, 0, total)]
        return [(s, min(s + self.chunk, total), max(0, s - self.margin), min(total, s + self.chunk + self.margin))
                for s in range(0, total, self.chunk)]  # fmt: skip

    def _decoded_pieces(self, z: torch.Tensor) -> Iterator[tuple[int, int, torch.Tensor]]:
        """(start, end, audio (B, C, end - start)) of the decode of a batch of latents: a one-vector model's clips
        whole, a time series in chunks whose margins make them the whole series' decode (each chunk's noise drawn at
        its own offset), so that memory does not grow with the series."""
        if self.mode.per_clip:
            yield 0, self.clip_length, self.model.decode(z)
            return
        hop = self.hop
        for s, e, a, b in self._chunks(z.shape[-1] * hop):
            yield s, e, self.model.decode(z[..., a // hop : b // hop], offset=a)[..., s - a : e - a]

    def _sounds_per_forward(self, samples: int) -> int:
        """How many time series of ``samples`` samples are decoded together: ``batch``, but no more than one chunk
        and its margins' worth of audio (40 sounds of 60 s, 16 at a time, held 16 chunks' work: +0.93 GB), at least
        one."""
        return max(1, min(self.batch, (self.chunk + 2 * self.margin) // samples))

    @torch.inference_mode()
    def _decoded(self, z: np.ndarray, layout) -> np.ndarray:
        """Latents at the numpy edge (checked) -> ``layout`` (the mode's decoder layout) -> float32 audio (B', T, C),
        ``batch`` rows per forward (a time series in chunks), each piece written into the one array returned. The
        batches' outputs, their concatenation and its float32 copy had all been held at once: ``sample(2000)`` of a
        one-shot model, 0.34 GB of sounds, took 1.18 GB more memory (now 0.44 GB), and a 20-minute decode in one
        pass 1.47 GB (now 0.26 GB, 0.2 GB of it the output)."""
        t = self._tensor(layout(z))
        samples = self.clip_length if self.mode.per_clip else t.shape[-1] * self.hop
        out = np.empty((len(t), samples, self.channels), dtype=np.float32)
        step = self.batch if self.mode.per_clip else self._sounds_per_forward(samples)
        for i in range(0, len(t), step):
            for s, e, y in self._decoded_pieces(t[i : i + step]):
                # Finite latents far outside the model's space (1e30, a prior sample at temperature 1e20) decoded to
                # NaN or inf without a word. The audio itself is checked rather than a bound on |z|: where a decoder
                # overflows depends on the model (the shipped ones stay finite, if absurd, at 1e6), and finite audio
                # is the contract.
                if not torch.isfinite(y).all():
                    raise VaedemoError(f"the latents (up to {float(np.abs(z).max()):.3g} in magnitude) decode to NaN "
                                       "or infinite audio: they lie far outside the model's latent space.")  # fmt: skip
                out[i : i + len(y), s:e] = y.transpose(1, 2).cpu().numpy()
        return out

    def _check_amount(self, sounds: int, samples: int) -> None:
        """Refuse, before anything is allocated, ``sounds`` sounds of ``samples`` samples each beyond the bounds:
        more than :data:`MAX_SOUNDS` sounds, one longer than MAX_SECONDS_DEFAULT (the longest input check_audio
        accepts), or more than :data:`MAX_TOTAL_SECONDS` of audio in all."""
        if sounds > MAX_SOUNDS:
            raise VaedemoError(f"at most {MAX_SOUNDS} sounds are made at once, got {sounds}.")
        unit = self.clip_length if self.mode.per_clip else self.hop  # (the longest sound in whole frames or clips)
        if samples > -(-MAX_SECONDS_DEFAULT * self.sample_rate // unit) * unit:
            raise VaedemoError(f"a sound is at most {MAX_SECONDS_DEFAULT} s long, got latents for "
                               f"{samples / self.sample_rate:.6g} s.")  # fmt: skip
        if sounds * samples > MAX_TOTAL_SECONDS * self.sample_rate:
            raise VaedemoError(f"{sounds} sounds of {samples / self.sample_rate:.6g} s are more audio than one call "
                               f"makes: at most {MAX_TOTAL_SECONDS} s in all.")  # fmt: skip

    def _samples_of(self, z: np.ndarray) -> int:
        """The samples one sound's checked latents decode to: (D,) one clip or frame, (rows, D) clips or frames."""
        rows = len(z) if z.ndim == 2 else 1
        return rows * (self.clip_length if self.mode.per_clip else self.hop)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Latents (D,), (clips, D) or (frames, D) (or one sound's (1, frames, D), as :meth:`sample_latents` gives
        it) -> float32 (samples, channels) at the model rate. At most 30 minutes of audio; latents that decode to NaN
        or infinite audio are refused."""
        z = check_latents(z, self.latent_size, (1, 2) if self.mode.per_clip else (1, 2, 3))
        if z.ndim == 3 and z.shape[0] != 1:  # (it was flattened into one sound)
            raise VaedemoError(f"decode takes one sound's latents, got {z.shape[0]} sounds' (decode_many decodes "
                               "several).")  # fmt: skip
        self._check_amount(1, self._samples_of(z.reshape(-1, z.shape[-1])))
        y = self._decoded(z, self.mode.from_numpy)  # (clips, clip, C) of one sound, or (1, samples, C)
        return y.reshape(-1, y.shape[-1])

    def decode_many(self, z: np.ndarray) -> np.ndarray:
        """The latents of n sounds, (n, D) or (n, frames, D) as :meth:`sample_latents` gives them -> float32
        (n, samples, channels), decoded ``batch`` sounds per forward instead of one at a time (long time series fewer,
        see :meth:`_sounds_per_forward`); within :meth:`sample_latents`' bounds on n and length."""
        z = check_latents(z, self.latent_size, (2,) if self.mode.per_clip else (3,))
        self._check_amount(len(z), self._samples_of(z[0]) if z.ndim == 3 else self.clip_length)
        return self._decoded(z, self.mode.batch_from_numpy)

    def sample_latents(
        self, n: int = 1, temperature: float = 1.0, seed: int = 0, use_flow: bool = True, seconds: float | None = None
    ) -> np.ndarray:
        """Prior latents, one sound each: (n, D) one vector per clip, (n, frames, D) a time series (``seconds``
        long, default one clip; at least one frame). ``n`` from 1 to :data:`MAX_SOUNDS`, ``temperature`` from 0 to
        :data:`MAX_TEMPERATURE`, ``seconds`` up to MAX_SECONDS_DEFAULT (30 min), the n sounds at most
        :data:`MAX_TOTAL_SECONDS` of audio in all."""
        if not _whole(n) or not 1 <= n <= MAX_SOUNDS:
            raise VaedemoError(f"the number of samples must be a whole number from 1 to {MAX_SOUNDS}, got {n!r}.")
        if not is_number(temperature) or not 0 <= temperature <= MAX_TEMPERATURE:
            raise VaedemoError(f"the temperature must be a number from 0 to {MAX_TEMPERATURE:g}, got {temperature!r}.")
        if not _whole(seed) or not 0 <= seed < 2**64:
            raise VaedemoError(f"the seed must be a whole number from 0 to 2**64 - 1, got {seed!r}.")
        if seconds is not None and (not is_number(seconds) or not 0 < seconds <= MAX_SECONDS_DEFAULT):
            raise VaedemoError(f"seconds must be a positive number up to {MAX_SECONDS_DEFAULT} (or None: one clip), "
                               f"got {seconds!r}.")  # fmt: skip
        shape = self.mode.prior_shape(int(n), round(seconds * self.sample_rate) if seconds is not None else None)
        self._check_amount(int(n), self.clip_length if self.mode.per_clip else shape[-1] * self.hop)
        g = torch.Generator().manual_seed(int(seed))
        with torch.inference_mode():
            flow = use_flow and self.has_prior_flow
            z = self.model.sample_latents(shape, float(temperature), g, flow, self.device)
        return self.mode.batch_to_numpy(z)

    def sample(
        self, n: int = 1, temperature: float = 1.0, seed: int = 0, use_flow: bool = True, seconds: float | None = None
    ) -> np.ndarray:
        """n sounds from the prior: float32 (n, samples, channels) at the model rate; same seed, same audio."""
        return self.decode_many(self.sample_latents(n, temperature, seed, use_flow, seconds))

    def interpolate(self, a: np.ndarray, b: np.ndarray, steps: int = 5, method: str = "prior") -> np.ndarray:
        """Decode the path between latents a and b (as returned by ``encode`` / ``sample_latents``; ``method`` as
        :meth:`path_latents` takes it): float32 (steps, samples, channels). Inputs of several clips use their first
        clip."""
        # a vector or rows (a one-vector model's clips, a time series' frames), or one sound as sample_latents gives it
        ranks = (1, 2) if self.mode.per_clip else (1, 2, 3)
        a, b = (check_latents(v, self.latent_size, ranks) for v in (a, b))
        if not self.mode.per_clip:  # a time series' vector is one frame, as decode reads it
            a, b = (v[None] if v.ndim == 1 else v for v in (a, b))
        path = self.path_latents(self.mode.sound_latent(a), self.mode.sound_latent(b), path_positions(steps), method)
        return self.decode_many(path)

    def path_latents(self, a: np.ndarray, b: np.ndarray, positions, method: str = "prior") -> np.ndarray:
        """The latents at ``positions`` (each in [0, 1]) on the way from sound latent a to b (a one-vector model's
        (D,), a time series' (frames, D), cut to the shorter), stacked. 'slerp' and 'lerp' go through the latent
        space; 'prior' is a slerp in the prior's base space (:meth:`AudioVAE.prior_base`: where the prior is a standard
        Gaussian) mapped back, so that the way follows where the prior puts its mass rather than cutting across it
        (without a prior flow: a slerp). Position 0 is a and 1 is b exactly."""
        if method not in METHODS:
            raise VaedemoError(f"interpolation method must be one of {', '.join(METHODS)}, got {method!r}.")
        rank = (1,) if self.mode.per_clip else (2,)
        a, b = (check_latents(v, self.latent_size, rank) for v in (a, b))
        n = min(len(a), len(b)) if a.ndim == 2 else None  # a time series: cut to the shorter
        a, b = a[:n], b[:n]
        positions = checked_positions(positions)
        self._check_amount(len(positions), self._samples_of(a))
        if method != "prior":
            return latents_between(a, b, positions, method)
        path = self._prior_base(latents_between(self._prior_base(a), self._prior_base(b), positions, "slerp"), True)
        path[positions == 0], path[positions == 1] = a, b  # the ends as given, not mapped there and back (rounding)
        return path

    def _prior_base(self, z: np.ndarray, inverse: bool = False) -> np.ndarray:
        """Latent vectors (..., D) to the prior's base space and back (see :meth:`path_latents`)."""
        with torch.inference_mode():
            flat = self._tensor(z.reshape(-1, z.shape[-1]))
            return self.model.prior_base(flat, inverse).cpu().numpy().reshape(z.shape)
