import random

import pytest
import torch

from vaedemo.config import load_config
from vaedemo.nn.vae import AudioVAE

BASE = ["model.sample_rate=16000", "model.clip_length=2048", "model.bands=4", "model.capacity=4", "model.ratios=[2, 4]",
        "model.latent_size=6", "model.flow_hidden=16"]


def _model(mode, causal, channels=1, flows=0):
    cfg = load_config(None, BASE + [f"model.latent_mode={mode}", f"model.causal={causal}", f"model.channels={channels}",
                                    f"model.posterior_flow_layers={flows}", f"model.prior_flow_layers={flows}"])
    torch.manual_seed(0)
    return AudioVAE(cfg.model).eval()


@pytest.mark.parametrize("mode", ["temporal", "single"])
@pytest.mark.parametrize("causal", [False, True])
def test_exact_length_for_random_lengths(mode, causal):
    model = _model(mode, causal, flows=2)
    rng = random.Random(1234)
    lengths = [1, 2, 31, 32, 33, 2047, 2048, 2049] + [rng.randint(1, 9000) for _ in range(16)]
    with torch.no_grad():
        for n in lengths:
            for sample in (True, False):
                out = model(torch.randn(2, 1, n), sample=sample)
                assert out.audio.shape == (2, 1, n), (mode, causal, n)


def test_latent_shapes_per_mode():
    with torch.no_grad():
        t = _model("temporal", False)
        out = t(torch.randn(3, 1, 1000))
        assert out.z.shape == (3, 6, -(-1000 // t.hop)) and out.kl.shape == (3,)
        s = _model("single", False, flows=2)
        out = s(torch.randn(3, 1, 5000))  # 3 clips of 2048 per example
        assert out.z.shape == (9, 6) and out.kl.shape == (9,)
        assert s.encode(torch.randn(2, 1, 100)).shape == (2, 6)
        assert s.sample(4).shape == (4, 1, 2048)
        assert t.sample(2, samples=5 * t.hop).shape == (2, 1, 5 * t.hop)


def test_stereo_keeps_two_channels():
    model = _model("single", False, channels=2)
    with torch.no_grad():
        assert model(torch.randn(1, 2, 3000)).audio.shape == (1, 2, 3000)
    with pytest.raises(ValueError, match="expects"):
        model(torch.randn(1, 1, 3000))


def test_causal_model_does_not_look_ahead():
    model = _model("temporal", True)
    x = torch.randn(1, 1, 4096)
    x2 = x.clone()
    x2[..., 3000:] = torch.randn(1, 1, 1096)
    with torch.no_grad():
        y, y2 = model(x, sample=False).audio, model(x2, sample=False).audio
    # PQMF filters are centred (non-causal by taps // 2), the conv stack is causal: outputs agree well before 3000
    safe = 3000 - model.pqmf.taps - model.hop
    assert torch.allclose(y[..., :safe], y2[..., :safe], atol=1e-5)
    assert not torch.allclose(y[..., 3000:], y2[..., 3000:])


def test_receptive_field_bounds_influence():
    model = _model("temporal", False)
    x = torch.zeros(1, 1, 8192)
    x2 = x.clone()
    x2[..., 4096] = 1.0
    with torch.no_grad():
        diff = (model(x, sample=False).audio - model(x2, sample=False).audio).abs()[0, 0]
    touched = torch.nonzero(diff > 1e-7).flatten()
    assert len(touched) and (touched - 4096).abs().max() <= model.receptive_field
