"""Shared fixtures: tiny generated drum-like one-shots and a tiny config that trains in seconds on CPU."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

TINY = [
    "model.sample_rate=16000",
    "model.clip_length=2048",
    "data.mode=oneshot",
    "data.val_fraction=0.25",
    "model.bands=4",
    "model.capacity=4",
    "model.ratios=[2, 2]",
    "model.latent_size=8",
    "model.flow_hidden=16",
    "train.discriminator.capacity=2",
    "train.discriminator.scales=1",
    "train.discriminator.periods=[2, 3]",
    "train.batch_size=4",
    "train.stft_sizes=[256, 128, 64]",
    "train.band_stft_sizes=[64, 32, 16]",
    "train.val_batches=1",
    "train.beta_warmup_steps=2",
]


def tiny_overrides(root: Path, run_dir: Path, mode: str = "single", flows: int = 2, **extra: object) -> list[str]:
    out = TINY + [
        f"data.root={root}",
        f"train.run_dir={run_dir}",
        f"model.latent_mode={mode}",
        f"model.posterior_flow_layers={flows}",
        f"model.prior_flow_layers={flows}",
    ]
    out += [f"{k.replace('__', '.')}={v}" for k, v in extra.items()]
    return out


def impulse_reach(model, length: int = 8192) -> int:
    """How far (in samples, either way) one impulse in the middle of silence changes the model's output: what its
    receptive field must cover. Both passes are deterministic (posterior mean; a noise branch's eval seed)."""
    import torch

    x = torch.zeros(1, model.cfg.channels, length)
    x2 = x.clone()
    x2[..., length // 2] = 1.0
    with torch.no_grad():
        diff = (model(x, sample=False).audio - model(x2, sample=False).audio).abs()[0, 0]
    touched = torch.nonzero(diff > 1e-7).flatten()
    assert len(touched), "the impulse changed nothing"
    return int((touched - length // 2).abs().max())


def jitter_weights(model) -> None:
    """Moves every weight away from its initialisation (0.05 x N(0, 1)), so that every path carries signal."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))


def branch_share(model, branch: str, x):
    """A decoder branch's share of the bands (``noise`` or ``partials``): the model's bands minus those of the same
    weights with the branch removed."""
    import torch

    with torch.no_grad():
        both = model(x, sample=False).bands_out
        kept = getattr(model.decoder, branch)
        setattr(model.decoder, branch, None)
        try:
            without = model(x, sample=False).bands_out
        finally:
            setattr(model.decoder, branch, kept)
    return both - without


def stream_unevenly(stream, x, hop: int, sizes: tuple[int, ...] = (1, 3, 5, 1, 2)):
    """``x`` (B, C, T) through ``stream`` in chunks of ``sizes`` hops in turn; the outputs joined."""
    import torch

    out, pos, k = [], 0, 0
    while pos < x.shape[-1]:
        n = min(sizes[k % len(sizes)] * hop, x.shape[-1] - pos)
        out.append(stream(x[..., pos : pos + n]))
        pos, k = pos + n, k + 1
    return torch.cat(out, dim=-1)


def assert_streams_like_offline(model, causal: bool, resets: int = 1):
    """The scripted stream of a float64 ``model`` equals its offline pass delayed by the stream's look-ahead (none for
    a causal model), fed unevenly, ``resets`` times over; returns the input it was checked on."""
    import torch

    from vaedemo.nn.streaming import StreamingVAE, script

    stream = script(StreamingVAE(model))
    assert (stream.lookahead == 0) == causal  # a branch adds no latency to a causal model
    frames = 30 + -(-stream.lookahead // model.hop)
    x = 0.1 * torch.randn(2, model.cfg.channels, frames * model.hop, dtype=torch.float64)
    with torch.no_grad():
        offline = model(x, sample=False).audio
    lag = stream.lookahead
    for _ in range(resets):
        stream.reset()
        streamed = stream_unevenly(stream, x, model.hop)
        assert torch.allclose(streamed[..., lag:], offline[..., : x.shape[-1] - lag], atol=1e-12, rtol=0)
    return x


def assert_never_looks_ahead(model, length: int = 6000) -> None:
    """Two inputs equal up to t give outputs equal up to t (and different from t + the model's lag on)."""
    import torch

    x = torch.randn(1, 1, length)
    for t in (1, 700, 2048, 3001, 5555):
        x2 = x.clone()
        x2[..., t:] = torch.randn(1, 1, length - t)
        with torch.no_grad():
            y, y2 = model(x, sample=False).audio, model(x2, sample=False).audio
        assert torch.allclose(y[..., :t], y2[..., :t], atol=1e-6), t
        assert not torch.allclose(y[..., t + model.delay :], y2[..., t + model.delay :], atol=1e-6), t


def drum(sr: int, seconds: float, seed: int) -> np.ndarray:
    """A synthetic drum hit: a pitch-swept decaying sine plus a noise burst."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    f0 = rng.uniform(60, 400)
    decay = rng.uniform(8, 30)
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 2 * np.exp(-t * 40))) / sr
    tone = np.sin(phase) * np.exp(-t * decay)
    noise = rng.standard_normal(len(t)) * np.exp(-t * decay * 3) * rng.uniform(0.1, 0.6)
    return (0.6 * (tone + noise) / 1.6).astype(np.float32)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module, as app.py runs on 2 cores (one thread per request): a multi-threaded op stalls
    when another process holds a core. Restored after the module, so the rest of the session is unaffected."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def drum_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("drums")
    for i in range(12):
        sf.write(root / f"hit_{i:02d}.wav", drum(16000, 0.15, i), 16000, subtype="PCM_16")
    return root


@pytest.fixture
def tiny_config(drum_folder, tmp_path):
    from vaedemo.config import load_config

    def make(mode: str = "single", flows: int = 2, **extra: object):
        return load_config(None, tiny_overrides(drum_folder, tmp_path / "run", mode, flows, **extra))

    return make


def tiny_backbone(tmp_path_factory, drum_folder, name: str, seed: int = 0, **extra: object) -> Path:
    """A tiny temporal bundle (random weights moved off their initialisation, ``extra``: model overrides as in
    :func:`tiny_overrides`): a two-stage model's backbone."""
    import torch

    from vaedemo.bundle import save_bundle
    from vaedemo.config import load_config
    from vaedemo.nn.vae import AudioVAE

    cfg = load_config(None, tiny_overrides(drum_folder, tmp_path_factory.mktemp("bb"), "temporal", 0, **extra))
    torch.manual_seed(seed)
    model = AudioVAE(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return save_bundle(model, tmp_path_factory.mktemp("backbone") / "b", {"name": name}, cfg.to_dict())


@pytest.fixture(scope="module")
def backbone(tmp_path_factory, drum_folder):
    return tiny_backbone(tmp_path_factory, drum_folder, "tiny temporal")
