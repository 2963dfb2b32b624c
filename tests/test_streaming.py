"""StreamingVAE against the offline model, in float64 so that a missing dependency cannot hide under float32 rounding
(a path through the outermost taps of every layer can be 1e-8 small), and its look-ahead against the model's own."""

import pytest
import torch

from vaedemo.config import load_config
from vaedemo.nn.streaming import StreamingVAE, encoder_lookahead
from vaedemo.nn.vae import AudioVAE

BASE = ["model.sample_rate=16000", "model.clip_length=2048", "model.capacity=4", "model.ratios=[2, 4]",
        "model.latent_size=6", "model.flow_hidden=16"]  # fmt: skip


def _model(causal: bool, bands: int, channels: int = 1, flows: int = 2, upsampling: str = "transposed",
           encoder: str = "wave") -> AudioVAE:  # fmt: skip
    cfg = load_config(None, BASE + [f"model.causal={causal}", f"model.bands={bands}", f"model.channels={channels}",
                                    f"model.posterior_flow_layers={flows}", f"model.upsampling={upsampling}",
                                    f"model.encoder={encoder}", "model.encoder_width=8"])  # fmt: skip
    torch.manual_seed(0)
    model = AudioVAE(cfg.model).eval().double()
    with torch.no_grad():  # weights away from their initialisation, so that every path carries signal
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _stream(stream: StreamingVAE, x: torch.Tensor, hop: int, sizes=(1, 3, 5, 1, 2)) -> torch.Tensor:
    out, pos, k = [], 0, 0
    while pos < x.shape[-1]:
        n = min(sizes[k % len(sizes)] * hop, x.shape[-1] - pos)
        out.append(stream.process(x[..., pos : pos + n]))
        pos, k = pos + n, k + 1
    return torch.cat(out, dim=-1)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("bands,channels,upsampling,encoder", [
    (1, 1, "transposed", "wave"), (4, 1, "transposed", "wave"), (4, 2, "transposed", "wave"), (4, 1, "resize", "wave"),
    (1, 1, "transposed", "spectral"), (4, 2, "transposed", "spectral")])  # fmt: skip
def test_stream_is_the_offline_pass_delayed_by_its_lookahead(causal, bands, channels, upsampling, encoder):
    model = _model(causal, bands, channels, upsampling=upsampling, encoder=encoder)
    stream = StreamingVAE(model)
    assert (stream.lookahead == 0) == causal and stream.latency == model.delay + stream.lookahead
    frames = 30 + -(-stream.lookahead // model.hop)  # chunks are whole hops; 30 frames are compared
    x = 0.1 * torch.randn(2, channels, frames * model.hop, dtype=torch.float64)
    with torch.no_grad():
        offline = model(x, sample=False).audio
    streamed = _stream(stream, x, model.hop)
    lag = stream.lookahead
    assert streamed.shape == x.shape
    assert torch.allclose(streamed[..., lag:], offline[..., : x.shape[-1] - lag], atol=1e-12, rtol=0)


@pytest.mark.parametrize("upsampling,encoder", [("transposed", "wave"), ("resize", "wave"), ("transposed", "spectral")])
def test_the_lookahead_is_the_right_receptive_field_up_to_frame_rounding(upsampling, encoder):
    """An impulse at p changes offline outputs from p - R on (R: the right receptive field). The stream waits
    ``lookahead`` samples: never less than R (it could not equal the offline pass otherwise), and less than one hop
    more (a strided conv rounds its lateness up to whole frames). One band: no PQMF with near-zero outer taps."""
    model = _model(False, bands=1, flows=0, upsampling=upsampling, encoder=encoder)
    x = 0.1 * torch.randn(1, 1, 64 * model.hop, dtype=torch.float64)
    right = 0
    with torch.no_grad():
        y = model(x, sample=False).audio
        for p in range(32 * model.hop, 33 * model.hop):
            x2 = x.clone()
            x2[..., p] += 1.0
            changed = torch.nonzero((model(x2, sample=False).audio - y).abs()[0, 0] > 1e-13).flatten()
            right = max(right, p - int(changed.min()))
    lookahead = StreamingVAE(model).lookahead
    assert right <= lookahead < right + model.hop


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("encoder", ["wave", "spectral"])
def test_the_encoder_map_of_the_first_frames_audio_alone_is_the_whole_maps_start(causal, encoder):
    """What encoding a hit with a silent tail relies on (the Engine computes a one-shot's map only as far as it reads):
    from the first k frames' worth of audio alone, the encoder's first k - lookahead frames are the whole audio's;
    a centred encoder's last ones differ (it reads ahead)."""
    model = _model(causal, bands=4, encoder=encoder)
    ahead = encoder_lookahead(model)
    assert (ahead == 0) == causal
    x = 0.1 * torch.randn(2, 1, 40 * model.hop, dtype=torch.float64)
    with torch.no_grad():
        whole = model.encoder_map(x)
        for k in (ahead + 1, ahead + 7):
            part = model.encoder_map(x[..., : k * model.hop])
            assert torch.allclose(part[..., : k - ahead], whole[..., : k - ahead], rtol=0, atol=1e-12)
            assert causal or not torch.allclose(part, whole[..., :k], rtol=0, atol=1e-9)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("encoder", ["wave", "spectral"])
def test_the_encoders_lookbehind_is_its_left_receptive_field(causal, encoder):
    """An impulse at p changes the encoder's frames k with k * hop - L <= p, L its look-behind, and no later ones:
    where a one-shot's silent tail stops mattering to the map. One band: no PQMF with near-zero outer taps (its
    look-behind is its analysis filter's left padding). The spectral encoder's long window is a periodic Hann, whose
    first weight is 0: it reaches one sample less than its window."""
    model = _model(causal, bands=1, flows=0, encoder=encoder)
    x = 0.1 * torch.randn(1, 1, 80 * model.hop, dtype=torch.float64)  # (the spectral stack reaches 33 frames back)
    reach = 0
    with torch.no_grad():
        y = model.encoder_map(x)
        for p in range(32 * model.hop, 33 * model.hop):
            x2 = x.clone()
            x2[..., p] += 1.0
            changed = torch.nonzero((model.encoder_map(x2) - y).abs()[0].amax(0) > 1e-13).flatten()
            reach = max(reach, int(changed.max()) * model.hop - p)
    assert reach == model.encoder_lookbehind - (encoder == "spectral") > 0


def test_streams_are_independent_and_reset_starts_afresh():
    model = _model(False, bands=4)
    a, b = StreamingVAE(model), StreamingVAE(model)
    x = 0.1 * torch.randn(1, 1, 6 * model.hop, dtype=torch.float64)
    first = _stream(a, x, model.hop)
    _stream(b, torch.randn_like(x), model.hop)  # another stream of the same model shares no state
    a.reset()
    assert torch.equal(_stream(a, x, model.hop), first)


def test_only_latent_time_series_stream():
    cfg = load_config(None, BASE + ["model.latent_mode=single"])
    with pytest.raises(ValueError, match="latent time series"):
        StreamingVAE(AudioVAE(cfg.model))


@pytest.mark.parametrize("upsampling,encoder", [("transposed", "wave"), ("resize", "wave"), ("transposed", "spectral")])
def test_the_stream_scripts_and_keeps_its_state_between_calls(upsampling, encoder):
    model = _model(False, bands=4, upsampling=upsampling, encoder=encoder)
    scripted = torch.jit.script(StreamingVAE(model))
    x = 0.1 * torch.randn(1, 1, 10 * model.hop, dtype=torch.float64)
    eager = _stream(StreamingVAE(model), x, model.hop)
    with torch.no_grad():
        assert torch.allclose(torch.cat([scripted(x[..., : 4 * model.hop]), scripted(x[..., 4 * model.hop :])], -1),
                              eager, atol=1e-12, rtol=0)  # fmt: skip
