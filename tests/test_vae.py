import random

import pytest
import torch
from conftest import impulse_reach

from vaedemo.config import load_config
from vaedemo.nn.vae import AudioVAE

BASE = ["model.sample_rate=16000", "model.clip_length=2048", "model.bands=4", "model.capacity=4", "model.ratios=[2, 4]",
        "model.latent_size=6", "model.flow_hidden=16"]


def _model(mode, causal, channels=1, flows=0, bands=4, upsampling="transposed"):
    cfg = load_config(None, BASE + [f"model.latent_mode={mode}", f"model.causal={causal}", f"model.channels={channels}",
                                    f"model.posterior_flow_layers={flows}", f"model.prior_flow_layers={flows}",
                                    f"model.bands={bands}", f"model.upsampling={upsampling}"])
    torch.manual_seed(0)
    return AudioVAE(cfg.model).eval()


@pytest.mark.parametrize("mode,upsampling,causal", [("temporal", "transposed", False), ("temporal", "transposed", True),
                                                    ("single", "transposed", False), ("temporal", "resize", False),
                                                    ("temporal", "resize", True)])  # (one-vector models are not causal)
def test_exact_length_for_random_lengths(mode, upsampling, causal):
    model = _model(mode, causal, flows=2, upsampling=upsampling)
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


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("flows,bands,upsampling", [(0, 1, "transposed"), (2, 1, "transposed"), (0, 4, "transposed"),
                                                    (0, 1, "resize")])  # fmt: skip
def test_causal_model_never_looks_ahead(channels, flows, bands, upsampling):
    """Inputs equal up to sample t and different after give outputs equal up to t, for several t (look-ahead 0).
    bands=1 (no PQMF lag to hide behind) checks the conv stack and the one-frame delay on their own."""
    model = _model("temporal", True, channels=channels, flows=flows, bands=bands, upsampling=upsampling)
    with torch.no_grad():  # weights away from their initialisation, so that every path carries signal
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(1, channels, 6000)
    for t in (1, 700, 2048, 3001, 5555):
        x2 = x.clone()
        x2[..., t:] = torch.randn(1, channels, 6000 - t)
        with torch.no_grad():
            y, y2 = model(x, sample=False).audio, model(x2, sample=False).audio
        assert torch.allclose(y[..., :t], y2[..., :t], atol=1e-6), t
        assert not torch.allclose(y[..., t + model.delay :], y2[..., t + model.delay :], atol=1e-6), t


def test_a_non_causal_model_does_look_ahead_and_has_no_delay():
    model = _model("temporal", False)
    assert model.delay == 0
    x = torch.randn(1, 1, 6000)
    x2 = x.clone()
    x2[..., 3000:] = 0
    with torch.no_grad():
        assert not torch.allclose(model(x).audio[..., :3000], model(x2).audio[..., :3000], atol=1e-6)


def test_causal_delay_is_the_pqmf_lag_plus_one_frame():
    model = _model("temporal", True)
    assert model.delay == model.pqmf.taps - 1 + model.hop and _model("temporal", True, bands=1).delay == 8
    from vaedemo.nn.pqmf import PQMF

    pqmf = PQMF(4, causal=True)
    x = torch.randn(1, 1, 4096)
    y = pqmf.synthesis(pqmf.analysis(x))
    lag = pqmf.delay
    err = y[..., lag + 500 : -500] - x[..., 500 : 4096 - lag - 500]
    assert 10 * torch.log10(x.pow(2).mean() / err.pow(2).mean()) > 40  # the same filter bank, lagging by taps - 1


@pytest.mark.parametrize("upsampling", ["transposed", "resize"])
def test_receptive_field_bounds_influence(upsampling):
    model = _model("temporal", False, upsampling=upsampling)
    assert impulse_reach(model) <= model.receptive_field


@pytest.mark.parametrize("upsampling,periodic", [("transposed", True), ("resize", False)])
def test_a_constant_latent_decodes_frame_periodic_only_through_transposed_convs(upsampling, periodic):
    """Why model.upsampling exists: a transposed conv's kernel phases turn a constant latent into a waveform that
    repeats every frame (a buzz at the frame rate); nearest-neighbour upsampling and a conv give a constant."""
    model = _model("temporal", False, bands=1, upsampling=upsampling)
    with torch.no_grad():
        for p in model.parameters():  # random weights away from init, biases too, so every phase carries signal
            p.add_(0.1 * torch.randn_like(p))
        bands = model.decoder(torch.randn(1, 6, 1).repeat(1, 1, 40))
    mid = bands[..., 10 * model.hop : 30 * model.hop].reshape(-1, 20, model.hop)  # away from the padded ends
    varying = (mid - mid.mean(dim=-1, keepdim=True)).pow(2).sum() / mid.pow(2).sum()
    assert torch.allclose(mid, mid[:, :1].expand_as(mid), atol=1e-6)  # either way the same in every frame
    assert (varying > 1e-3) == periodic  # but only a transposed conv varies within the frame


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("ratio", [2, 4, 8])
def test_resize_upsampling_in_polyphase_form_is_the_upsampled_conv(causal, ratio):
    """ResizeUp runs as one conv at the input rate with r phases; the same outputs and gradients as nearest-neighbour
    upsampling followed by the (2r + 1)-tap conv, in float64 so that only the order of the sums differs."""
    from vaedemo.nn.blocks import ResizeUp

    torch.manual_seed(ratio)
    up = ResizeUp(5, 3, ratio, causal).double()
    x = torch.randn(2, 5, 13, dtype=torch.float64, requires_grad=True)
    y, ref = up(x), up.conv(x.repeat_interleave(ratio, dim=-1))  # the definition, at the upsampled rate
    assert y.shape == (2, 3, 13 * ratio)
    assert torch.allclose(y, ref, atol=1e-12)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, up.conv.conv.weight, up.conv.conv.bias], g)
    ref_grads = torch.autograd.grad(ref, [x, up.conv.conv.weight, up.conv.conv.bias], g)
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(grads, ref_grads))
