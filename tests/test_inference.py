import numpy as np
import pytest
import torch

from vaedemo.bundle import load, save_bundle
from vaedemo.errors import AudioError, VaedemoError
from vaedemo.inference import MAX_SOUNDS, Engine, cost_batches, latents_between, path_positions, slerp
from vaedemo.nn.vae import AudioVAE


def _engine(tiny_config, tmp_path, mode, channels=1, flows=2, causal=False, upsampling="transposed", **kw):
    cfg = tiny_config(mode, flows=flows, model__channels=channels, model__causal=causal, model__upsampling=upsampling)
    torch.manual_seed(0)
    model = AudioVAE(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return Engine(save_bundle(model, tmp_path / f"b-{mode}-{channels}"), **kw)


@pytest.mark.parametrize("mode", ["temporal", "single"])
def test_reconstruct_keeps_shape_rate_and_channels(tiny_config, tmp_path, mode):
    eng = _engine(tiny_config, tmp_path, mode)
    rng = np.random.default_rng(0)
    cases = [((1000,), 16000), ((5000, 2), 16000), ((777, 6), 16000), ((3000, 1), 44100), ((1, 1), 16000),
             ((1, 1), 96000), ((2, 2), 192000)]  # (a sample or two at a high rate round to none at the model's)
    for shape, sr in cases:
        x = rng.standard_normal(shape).astype(np.float32) * 0.1
        y = eng.reconstruct(x, sr)
        expect = shape if len(shape) == 2 else (shape[0], 1)
        assert y.shape == expect and y.dtype == np.float32 and np.isfinite(y).all()
        assert len(eng.encode(x, sr)) >= 1


def test_stereo_model_keeps_stereo(tiny_config, tmp_path):
    eng = _engine(tiny_config, tmp_path, "single", channels=2)
    x = np.random.default_rng(0).standard_normal((3000, 2)).astype(np.float32) * 0.1
    assert eng.reconstruct(x, 16000).shape == (3000, 2)
    assert eng.reconstruct(x[:, 0], 16000).shape == (3000, 2)  # mono in, stereo model: stereo out
    assert eng.reconstruct(np.tile(x, (1, 3))[:, :5], 16000).shape == (3000, 5)
    assert eng.sample(2, seed=1).shape == (2, 2048, 2)


def test_an_odd_last_channel_through_a_stereo_model_comes_back_as_its_pair_alone(tiny_config, tmp_path):
    """Channels go through a stereo model in pairs; a fifth channel goes as a pair of itself, and comes back as the
    mean of that pair's two outputs: what the channel reconstructs to alone (it came back as the pair's left only)."""
    eng = _engine(tiny_config, tmp_path, "single", channels=2)
    x = np.random.default_rng(0).standard_normal((3000, 5)).astype(np.float32) * 0.1
    pair = eng.reconstruct(np.repeat(x[:, 4:], 2, axis=1), 16000)
    assert np.abs(pair[:, 0] - pair[:, 1]).max() > 1e-3  # the model's two outputs differ
    y = eng.reconstruct(x, 16000)
    np.testing.assert_allclose(y[:, 4], pair.mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(y[:, :2], eng.reconstruct(x[:, :2], 16000), atol=1e-5)  # the pairs before, as pairs


@pytest.mark.parametrize("causal,upsampling", [(False, "transposed"), (True, "transposed"), (False, "resize")])
def test_temporal_chunks_have_no_seams(tiny_config, tmp_path, causal, upsampling):
    """Chunked reconstruction equals the whole signal through the model; a causal model's lag is shifted back."""
    eng = _engine(tiny_config, tmp_path, "temporal", flows=0, causal=causal, upsampling=upsampling, chunk_seconds=0.1)
    assert eng.chunk < 20000  # several chunks below
    lag = eng.model.delay
    assert (lag > 0) == causal
    x = np.random.default_rng(1).standard_normal((20000, 1)).astype(np.float32) * 0.1
    chunked = eng.reconstruct(x, 16000)
    with torch.no_grad():
        padded = torch.from_numpy(np.pad(x, ((0, lag), (0, 0))).T[None].copy())
        whole = eng.model(padded, sample=False).audio[0].numpy().T[lag : lag + len(x)]
    assert chunked.shape == x.shape and np.allclose(chunked, whole, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_long_encodes_and_decodes_go_in_chunks_equal_to_the_whole_pass(tiny_config, tmp_path, monkeypatch, causal):
    """Encode and decode a long time series in chunks, no forward longer than a chunk and its margins, nor a batch of
    sounds with more audio than that (in one pass, 30 minutes took GBs; 16 long sounds at once, 16 chunks' work), and
    the same latents and audio as one pass over the whole (a causal model's delay too)."""
    eng = _engine(tiny_config, tmp_path, "temporal", flows=0, causal=causal, chunk_seconds=0.1, batch=2)
    x = np.random.default_rng(1).standard_normal((20000, 1)).astype(np.float32) * 0.1
    z = eng.sample_latents(3, seconds=1.3, seed=4)
    with torch.no_grad():
        whole_z = eng.model.encode(torch.from_numpy(x.T[None].copy()))[0].numpy().T
        whole_y = eng.model.decode(torch.from_numpy(z.transpose(0, 2, 1).copy())).numpy().transpose(0, 2, 1)
    longest, model = eng.chunk + 2 * eng.margin, eng.model
    seen = []
    monkeypatch.setattr(model, "encode", lambda x, *a: seen.append(x.shape[-1]) or type(model).encode(model, x, *a))
    monkeypatch.setattr(model, "decode", lambda z, *a, **k: seen.append(len(z) * z.shape[-1] * eng.hop)
                        or type(model).decode(model, z, *a, **k))  # fmt: skip
    assert np.allclose(eng.encode(x, 16000), whole_z, atol=1e-5) and len(whole_z) == -(-len(x) // eng.hop)
    assert np.allclose(eng.sample(3, seconds=1.3, seed=4), whole_y, atol=1e-5)
    assert np.allclose(eng.decode(z[1]), whole_y[1], atol=1e-5)
    assert len(seen) > 6 and max(seen) <= longest < len(x)
    for out in (eng.encode(x, 16000), eng.decode(z[1]), eng.decode_many(z)):  # float32 in C order, however made
        assert out.dtype == np.float32 and out.flags.c_contiguous


@pytest.mark.parametrize("channels", [1, 2])
def test_a_time_series_models_channels_go_through_the_chunks_one_group_at_a_time(tiny_config, tmp_path, monkeypatch,
                                                                                 channels):  # fmt: skip
    """Each chunk's work held every channel group at once (16 channels of 60 s: +1.06 GB; one at a time +0.3 GB):
    the groups go in turn, each reconstructed as it is alone (a stereo model's odd last channel as its pair)."""
    eng = _engine(tiny_config, tmp_path, "temporal", channels=channels, chunk_seconds=0.1)
    x = np.random.default_rng(4).standard_normal((9000, 5)).astype(np.float32) * 0.1
    if channels == 1:
        alone = [eng.reconstruct(x[:, c], 16000) for c in range(5)]
    else:
        alone = [eng.reconstruct(x[:, :2], 16000), eng.reconstruct(x[:, 2:4], 16000),
                 eng.reconstruct(np.repeat(x[:, 4:], 2, axis=1), 16000).mean(axis=1, keepdims=True)]  # fmt: skip
    run, seen = eng._run, []
    monkeypatch.setattr(eng, "_run", lambda groups, *a: seen.append(len(groups)) or run(groups, *a))
    y = eng.reconstruct(x, 16000)
    assert seen == [1] * len(alone) and np.allclose(y, np.concatenate(alone, axis=1), atol=1e-6)


def test_a_one_vector_models_long_input_is_encoded_a_batch_of_clips_at_a_time(tiny_config, tmp_path, monkeypatch):
    eng = _engine(tiny_config, tmp_path, "single", batch=3)
    x = np.random.default_rng(1).standard_normal((eng.clip_length * 7 + 100, 1)).astype(np.float32) * 0.1
    with torch.no_grad():
        whole = eng.model.encode(torch.from_numpy(x.T[None].copy())).numpy()
    model, seen = eng.model, []
    monkeypatch.setattr(model, "encode", lambda x, *a: seen.append(x.shape[-1]) or type(model).encode(model, x, *a))
    assert np.allclose(eng.encode(x, 16000), whole, atol=1e-5) and whole.shape[0] == 8
    assert seen == [3 * eng.clip_length] * 2 + [eng.clip_length * 1 + 100]


@pytest.mark.parametrize("rate", [22050, 48000])
def test_audio_at_another_rate_comes_back_at_that_rate(tiny_config, tmp_path, rate):
    """The reconstruction of the same sound given at another rate is the model-rate reconstruction at that rate
    (it came back at the model's rate, padded with silence to the input's length: sped up and pitched up)."""
    from vaedemo.audio import resample

    eng = _engine(tiny_config, tmp_path, "temporal", flows=0)
    sr = eng.sample_rate
    t = np.arange(8000) / sr
    x = sum(a * np.sin(2 * np.pi * f * t + a) for a, f in ((0.3, 440), (0.2, 1234), (0.1, 3000)))[:, None]
    x = x.astype(np.float32)  # well below either rate's Nyquist: resampling it there and back keeps it
    at_rate = eng.reconstruct(resample(x, sr, rate), rate)
    assert at_rate.shape == (len(x) * rate // sr, 1)
    np.testing.assert_allclose(at_rate, resample(eng.reconstruct(x, sr), sr, rate), atol=1e-4)


def test_sample_is_deterministic_per_seed(tiny_config, tmp_path):
    eng = _engine(tiny_config, tmp_path, "single")
    a, b, c = eng.sample(3, temperature=0.8, seed=7), eng.sample(3, temperature=0.8, seed=7), eng.sample(3, seed=8)
    assert a.shape == (3, 2048, 1)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    gauss = eng.sample(3, temperature=0.8, seed=7, use_flow=False)
    assert not np.allclose(a, gauss)  # the flow prior is used (and can be switched off)
    temporal = _engine(tiny_config, tmp_path, "temporal")
    assert temporal.sample(2, seed=3, seconds=0.5).shape == (2, 8000, 1)
    assert np.array_equal(temporal.sample(1, seed=3), temporal.sample(1, seed=3))


@pytest.mark.parametrize("mode", ["temporal", "single"])
def test_encode_decode_interpolate(tiny_config, tmp_path, mode):
    eng = _engine(tiny_config, tmp_path, mode)
    rng = np.random.default_rng(2)
    za = eng.encode(rng.standard_normal(3000).astype(np.float32) * 0.1, 16000)
    zb = eng.encode(rng.standard_normal(2500).astype(np.float32) * 0.1, 16000)
    if mode == "single":
        assert za.shape == (2, 8)  # two clips of 2048
    else:
        assert za.shape == (-(-3000 // eng.hop), 8)
    assert eng.decode(za).shape[1] == 1
    path = eng.interpolate(za, zb, steps=4, method="slerp")
    assert path.shape[0] == 4 and np.isfinite(path).all()
    assert np.allclose(path[0], eng.decode(za[:1] if mode == "single" else za[: len(zb)]), atol=1e-5)
    with pytest.raises(VaedemoError, match="dimensions"):
        eng.decode(np.zeros((3, 5)))


@pytest.mark.parametrize("flows", [0, 2])
def test_a_path_through_the_prior_is_a_slerp_in_its_base_space_from_a_to_b_exactly(tiny_config, tmp_path, flows):
    """'prior': a slerp between the ends' images in the prior's base space, mapped back; without a prior flow the base
    space is the latent space, so it is a slerp."""
    eng = _engine(tiny_config, tmp_path, "single", flows=flows)
    z = eng.sample_latents(2, 1.0, seed=3)
    ts = [0.0, 0.3, 0.5, 1.0]
    path = eng.path_latents(z[0], z[1], ts, "prior")
    assert path.shape == (4, eng.latent_size) and np.array_equal(path[0], z[0]) and np.array_equal(path[-1], z[1])
    latent_slerp = eng.path_latents(z[0], z[1], ts, "slerp")
    if flows:
        base = eng._prior_base(z)
        assert np.allclose(eng._prior_base(path[1:3]), [slerp(base[0], base[1], t) for t in ts[1:3]], atol=1e-4)
        assert not np.allclose(path[1:3], latent_slerp[1:3], atol=1e-3)  # the flow bends the way
    else:
        assert np.allclose(path, latent_slerp, atol=1e-6)
    audio = eng.interpolate(z[0], z[1], steps=3)  # the default method
    assert np.allclose(audio[1], eng.decode(eng.path_latents(z[0], z[1], [0.5])[0]), atol=1e-5)
    with pytest.raises(VaedemoError, match="one of prior, slerp, lerp, got 'cubic'"):
        eng.path_latents(z[0], z[1], ts, "cubic")


def test_a_path_through_the_prior_of_a_time_series_goes_frame_by_frame_and_checks_its_inputs(tiny_config, tmp_path):
    eng = _engine(tiny_config, tmp_path, "temporal", flows=2)
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, eng.latent_size)).astype(np.float32) for n in (12, 9))
    path = eng.path_latents(a, b, [0.0, 0.5, 1.0], "prior")
    assert path.shape == (3, 9, eng.latent_size) and np.array_equal(path[0], a[:9]) and np.array_equal(path[2], b)
    base = eng._prior_base(np.stack([a[:9], b]))
    assert np.allclose(eng._prior_base(path[1]), slerp(base[0], base[1], 0.5), atol=1e-4)  # each frame's own slerp
    for positions, why in (([], "from 0 to 1"), ([0.5, np.nan], "from 0 to 1"), ([1.5], "from 0 to 1")):
        with pytest.raises(VaedemoError, match=why):
            eng.path_latents(a, b, positions)
    with pytest.raises(VaedemoError, match="dimensions"):
        eng.path_latents(a[:, :3], b, [0.5])
    with pytest.raises(VaedemoError, match="shaped"):
        eng.path_latents(a[0], b, [0.5])  # a vector is one frame, not a time series


def test_slerp_properties():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    assert np.allclose(slerp(a, b, 0.0), a) and np.allclose(slerp(a, b, 1.0), b)
    mid = slerp(a, b / 2, 0.5)  # unit vectors: the midpoint bisects the angle and stays on the circle
    assert np.isclose(np.arctan2(mid[1], mid[0]), np.pi / 4) and np.isclose(np.linalg.norm(mid), 1.0)
    assert np.allclose(slerp(a, a, 0.3), a)  # parallel vectors fall back to lerp
    path = latents_between(np.zeros((5, 3)), np.ones((4, 3)), path_positions(3), "lerp")
    assert path.shape == (3, 4, 3) and np.allclose(path[1], 0.5)
    with pytest.raises(VaedemoError, match="slerp' or 'lerp"):
        latents_between(a, b, path_positions(3), "cubic")


def test_bad_audio_is_an_audio_error(tiny_config, tmp_path):
    eng = _engine(tiny_config, tmp_path, "single")
    with pytest.raises(AudioError, match="NaN"):
        eng.reconstruct(np.array([0.0, np.nan], np.float32), 16000)
    with pytest.raises(AudioError, match="empty"):
        eng.reconstruct(np.zeros(0, np.float32), 16000)
    for audio, says in ((["0.1", "x"], "numbers, got text"), ([[0.1, 0.2], [0.3]], "rows of equal length"),
                        (np.full(100, 0.1j), "complex"), ([0, 1000, -1000], "int64 integers")):  # fmt: skip
        with pytest.raises(AudioError, match=says):
            eng.reconstruct(audio, 16000)


@pytest.mark.timeout(60)  # (a NaN rate hung soxr)
@pytest.mark.parametrize("mode", ["single", "temporal"])
def test_every_entry_point_that_takes_a_rate_refuses_one_that_is_not_a_usable_number(tiny_config, tmp_path, mode):
    eng = _engine(tiny_config, tmp_path, mode)
    x = np.zeros(100, np.float32)
    calls = (eng.reconstruct, eng.reconstruction, eng.encode, eng.hits, eng.prepare)
    for call in calls:
        for rate in (float("nan"), "44100", True):
            with pytest.raises(AudioError, match="unusable sample rate"):
                call(x, rate)


def test_engine_options_outside_their_contract_are_one_sentence(tiny_config, tmp_path):
    """Each failed only at the first call (batch=0: range()'s error, -1: torch.cat's, chunk_seconds=NaN: int()'s), or
    ran many times slower (a negative chunk_seconds: chunks of one latent frame); device "nope" was torch's error."""
    bundle = _engine(tiny_config, tmp_path, "temporal").bundle
    for kwargs, says in [({"batch": 0}, "batch must be a whole number of at least 1, got 0"),
                         ({"batch": -1}, "batch must be"), ({"batch": 2.0}, "batch must be"),
                         ({"batch": True}, "batch must be"),
                         ({"chunk_seconds": float("nan")}, "chunk_seconds must be a finite number of at least 0.1"),
                         ({"chunk_seconds": -1.0}, "chunk_seconds"), ({"chunk_seconds": 0.001}, "chunk_seconds"),
                         ({"chunk_seconds": float("inf")}, "chunk_seconds"), ({"chunk_seconds": "8"}, "chunk_seconds"),
                         ({"device": "nope"}, "device must name a torch device such as 'cpu'"),
                         ({"device": "meta"}, "device 'meta' is not one this torch can use here")]:  # fmt: skip
        with pytest.raises(VaedemoError, match=says):
            Engine(bundle, **kwargs)
    with pytest.raises(VaedemoError, match="device must name a torch device"):
        load(bundle.path, device="nope")
    assert Engine(bundle, device=torch.device("cpu"), chunk_seconds=np.float32(0.5), batch=np.int64(3)).batch == 3


def test_a_stream_chunk_has_at_most_as_many_channels_as_reconstruct_reads(tiny_config, tmp_path):
    """A chunk of (512, 100) went through (reconstruct refuses more than 16 channels); a ragged chunk was numpy's
    error."""
    stream = _engine(tiny_config, tmp_path, "temporal", causal=True).stream()
    with pytest.raises(AudioError, match="^a stream chunk has 17 channels; vaedemo reads 1 to 16\\.$"):
        stream.process(np.zeros((stream.hop, 17), np.float32))
    with pytest.raises(AudioError, match="a stream chunk must be an array of numbers"):
        stream.process([[0.1, 0.2], [0.3]])
    assert stream.process(np.zeros((stream.hop, 16), np.float32)).shape == (stream.hop, 16)


@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("mode", ["single", "temporal"])
def test_batched_decoding_equals_one_at_a_time(tiny_config, tmp_path, mode, noise):
    """A sound decodes as it does alone wherever it sits in a batch, a noise branch's noise included: prior sample k
    of n is the sample its own seed gives with n = 1 (the demo's titles promise it), a path's end is its latent's
    sound, a stereo file of two equal channels comes back with two equal channels."""
    branch = {"model__noise_bands": 5, "model__noise_hop": 4, "model__noise_relative": True} if noise else {}
    torch.manual_seed(0)
    model = AudioVAE(tiny_config(mode, flows=2 if mode == "single" else 0, **branch).model)
    if noise:
        with torch.no_grad():
            model.decoder.noise.net[-1].conv.bias.add_(3.0)  # noise well above silence
    eng = Engine(save_bundle(model, tmp_path / "b"), batch=3)
    z = eng.sample_latents(7, 1.0, seed=5)
    many = eng.decode_many(z)
    assert many.shape[0] == 7 and np.allclose(many, np.stack([eng.decode(zi) for zi in z]), atol=1e-6)
    assert np.array_equal(eng.sample(7, 1.0, seed=5), many)  # the same seed, the same audio
    seeds = np.concatenate([eng.sample_latents(1, 1.0, seed=s) for s in (5, 6, 7, 8)])  # the demo's draws
    assert np.allclose(eng.decode_many(seeds)[3], eng.sample(1, 1.0, seed=8)[0], atol=1e-6)
    assert np.allclose(eng.interpolate(z[0], z[1], 4)[-1], eng.decode(z[1]), atol=1e-6)
    one = eng.sample_latents(1, seed=5)
    drawn = eng.interpolate(one, eng.sample_latents(1, seed=6), 4)  # latents as sample_latents gives them
    assert np.allclose(drawn[0], eng.decode(one), atol=1e-6)
    if mode == "temporal":  # several sounds for one end: which one? (a one-vector model's rows are clips of one sound)
        with pytest.raises(VaedemoError, match="got latents of 2 sounds for one end"):
            eng.interpolate(eng.sample_latents(2, seed=5), one, 4)
    mono = np.random.default_rng(0).standard_normal(5000).astype(np.float32) * 0.1
    y = eng.reconstruct(np.stack([mono, mono], axis=1), eng.sample_rate)
    assert np.allclose(y[:, 0], y[:, 1], atol=1e-6)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("channels", [1, 2])
def test_stream_equals_offline_delayed_by_its_latency(tiny_config, tmp_path, channels, causal):
    """Causal: the model's own lag (PQMF, one latent frame). Centred: its look-ahead, nothing else."""
    eng = _engine(tiny_config, tmp_path, "temporal", channels=channels, flows=2, causal=causal)
    stream = eng.stream()
    assert stream.latency > 0 and (stream.latency == eng.model.delay) == causal and (eng.model.delay > 0) == causal
    frames = 40 + -(-stream.latency // eng.hop)  # chunks are whole hops; 40 frames are compared
    x = np.random.default_rng(2).standard_normal((frames * eng.hop, channels)).astype(np.float32) * 0.1
    sizes = [eng.hop, 3 * eng.hop, 5 * eng.hop, eng.hop]  # uneven chunks
    out, pos, k = [], 0, 0
    while pos < len(x):
        n = min(sizes[k % len(sizes)], len(x) - pos)
        out.append(stream.process(x[pos : pos + n]))
        pos, k = pos + n, k + 1
    streamed = np.concatenate(out)
    offline = eng.reconstruct(x, 16000)  # aligned with the input: the stream lags it by exactly `latency`
    lag = stream.latency
    assert streamed.shape == x.shape
    assert np.allclose(streamed[lag:], offline[: len(x) - lag], atol=1e-5)
    assert not np.allclose(streamed[lag - 1 : -1], offline[: len(x) - lag], atol=1e-5)  # one sample off is wrong
    stream.reset()
    assert np.allclose(stream.process(x[: 4 * eng.hop]), streamed[: 4 * eng.hop], atol=1e-6)  # reset starts afresh


@pytest.mark.parametrize("channels,inputs", [(2, 2), (1, 3)])
def test_a_long_stream_chunk_goes_through_in_pieces_with_the_output_of_one_pass(tiny_config, tmp_path, monkeypatch,
                                                                                 channels, inputs):  # fmt: skip
    """A chunk of any length went through the model at once (60 s of mono: +1.3 GB): it goes STREAM_PIECE_HOPS hops
    at a time, with the same output as one pass, the latents' noise too (drawn for the whole chunk at once, every
    channel group's)."""
    from vaedemo import inference

    eng = _engine(tiny_config, tmp_path, "temporal", channels=channels, flows=2, causal=True)
    x = np.random.default_rng(3).standard_normal((23 * eng.hop, inputs)).astype(np.float32) * 0.1
    bends = [{}, {"latent_scale": 0.7, "latent_noise": 0.3}]
    whole = [eng.stream().process(x, **bend) for bend in bends]
    monkeypatch.setattr(inference, "STREAM_PIECE_HOPS", 5)
    class Recorder:  # a stream's scripted module, each call's length noted
        def __init__(self, vae):
            self.vae, self.seen = vae, []

        def __call__(self, piece):
            return self.seen.append(piece.shape[-1]) or self.vae(piece)

        def encode(self, piece):
            return self.seen.append(piece.shape[-1]) or self.vae.encode(piece)

        def decode(self, z):
            return self.vae.decode(z)

    for bend, expected in zip(bends, whole):
        stream = eng.stream()
        stream._vae = recorder = Recorder(stream._vae)
        np.testing.assert_allclose(stream.process(x, **bend), expected, atol=1e-6)
        assert recorder.seen == [5 * eng.hop] * 4 + [3 * eng.hop]


def test_a_non_finite_stream_chunk_is_refused_before_it_reaches_the_caches(tiny_config, tmp_path):
    """One NaN in a stream's caches made every later chunk NaN until reset(): it is refused in one sentence, and the
    stream goes on as if it had never come."""
    stream = _engine(tiny_config, tmp_path, "temporal", flows=0, causal=True).stream()
    x = np.random.default_rng(0).standard_normal((8 * stream.hop, 1)).astype(np.float32) * 0.1
    want = stream.process(x)
    stream.reset()
    for bad in (np.nan, np.inf):
        chunk = x.copy()
        chunk[5] = bad
        with pytest.raises(AudioError, match="a stream chunk contains NaN or infinite samples"):
            stream.process(chunk)
    assert np.array_equal(stream.process(x), want)
    with pytest.raises(AudioError, match="must be 1-D .samples. or 2-D"):
        stream.process(np.zeros((2, stream.hop, 1), np.float32))
    assert stream.process(np.zeros((0, 1), np.float32)).shape == (0, 1)  # nothing in, nothing out


def test_single_latent_models_do_not_stream(tiny_config, tmp_path):
    with pytest.raises(VaedemoError, match="cannot stream: it encodes one latent vector per clip"):
        _engine(tiny_config, tmp_path, "single", flows=0).stream()
    stream = _engine(tiny_config, tmp_path, "temporal", flows=0).stream()
    with pytest.raises(VaedemoError, match="multiple of"):
        stream.process(np.zeros((100, 1), np.float32))


@pytest.mark.parametrize("mode", ["temporal", "single"])
def test_latents_and_sampling_arguments_outside_their_contract_are_one_sentence(tiny_config, tmp_path, mode):
    """Each was a traceback from deep inside (an empty array, a scalar, another rank, n=2.0, seconds=nan), or a
    result outside the contract: NaN latents decoded to NaN audio, a 3-D array was flattened into one sound, a
    negative temperature and seconds=-1 were accepted."""
    eng = _engine(tiny_config, tmp_path, mode)
    d = eng.latent_size
    bad_latents = [(np.zeros((0, d)), "must not be empty"), (np.float32(1.0), "must be shaped"),
                   (np.zeros((2, 3, d)), "must be shaped" if mode == "single" else "one sound's latents, got 2"),
                   (np.full((2, d), np.nan), "NaN or infinite"),
                   (np.full(d, np.inf), "NaN or infinite"), (np.zeros((2, d + 1)), f"must have {d} dimensions"),
                   ("abc", "must be an array of numbers")]  # fmt: skip
    for z, says in bad_latents:
        with pytest.raises(VaedemoError, match=says):
            eng.decode(z)
    with pytest.raises(VaedemoError, match=r"must be shaped \(n, "):
        eng.decode_many(np.zeros(d))
    with pytest.raises(VaedemoError, match="must not be empty"):
        eng.interpolate(np.zeros((0, d)), np.zeros((1, d)))
    with pytest.raises(VaedemoError, match="a whole number of 2 to 10000 steps, got 2.0"):
        eng.interpolate(np.zeros(d), np.zeros(d), steps=2.0)
    assert eng.interpolate(np.zeros(d), np.ones(d), steps=3).shape[0] == 3  # a vector: one frame, or one clip
    with pytest.raises(VaedemoError, match="must not be empty"):
        eng.decode([])
    for kwargs, says in [({"n": 2.0}, "number of samples"), ({"n": True}, "number of samples"),
                         ({"temperature": -1.0}, "temperature"), ({"temperature": float("nan")}, "temperature"),
                         ({"seed": 2**64}, "seed"), ({"seed": 1.7}, "seed"), ({"seconds": float("nan")}, "seconds"),
                         ({"seconds": -1.0}, "seconds"), ({"seconds": 0}, "seconds")]:  # fmt: skip
        with pytest.raises(VaedemoError, match=says):
            eng.sample(**kwargs)
    assert eng.sample(np.int64(2), np.float32(0.5), np.uint64(3)).shape[0] == 2  # numpy numbers are numbers
    end = np.zeros(d) if mode == "single" else np.zeros((2, d))  # a sound's latent
    for positions, says in ((None, "got None"), (["a"], r"got \['a'\]"), ("0.5", "got '0.5'")):  # None read as NaN
        with pytest.raises(VaedemoError, match=f"^positions on a path must be a list of 1 to {MAX_SOUNDS} numbers "
                                               f"from 0 to 1, {says}\\.$"):  # fmt: skip
            eng.path_latents(end, end, positions)


@pytest.mark.parametrize("mode", ["temporal", "single"])
def test_what_one_call_makes_is_bounded_before_anything_is_allocated(tiny_config, tmp_path, mode):
    """sample_latents(10**9), sample_latents(1, seconds=1e9) and a decode of 10**7 frames asked torch for terabytes;
    a temperature of 1e20 and latents of 1e30 decoded to NaN audio without a word."""
    eng = _engine(tiny_config, tmp_path, mode)
    d, frames_in_30_min = eng.latent_size, 1800 * eng.sample_rate // eng.hop
    for kwargs, says in [({"n": MAX_SOUNDS + 1}, f"number of samples must be a whole number from 1 to {MAX_SOUNDS}"),
                         ({"seconds": 1e9}, "seconds must be a positive number up to 1800"),
                         ({"temperature": 1e20}, "temperature must be a number from 0 to 10, got 1e"),
                         ({"temperature": 10.5}, "temperature")]:  # fmt: skip
        with pytest.raises(VaedemoError, match=says):
            eng.sample_latents(**kwargs)
    assert eng.sample(1, temperature=10).shape[0] == 1
    unit = eng.clip_length if mode == "single" else eng.hop  # a clip's or a frame's samples
    too_long = np.zeros((-(-1800 * eng.sample_rate // unit) + 1, d))  # a frame or clip past 30 minutes
    with pytest.raises(VaedemoError, match="a sound is at most 1800 s long, got latents for 1800"):
        eng.decode(too_long)
    with pytest.raises(VaedemoError, match=f"at most {MAX_SOUNDS} sounds are made at once, got {MAX_SOUNDS + 1}"):
        eng.decode_many(np.zeros((MAX_SOUNDS + 1, d) if mode == "single" else (MAX_SOUNDS + 1, 1, d)))
    with pytest.raises(VaedemoError, match=f"a whole number of 2 to {MAX_SOUNDS} steps"):
        eng.interpolate(np.zeros(d), np.zeros(d), steps=MAX_SOUNDS + 1)
    if mode == "temporal":  # in all: 10 sounds of 30 minutes are more than MAX_TOTAL_SECONDS
        with pytest.raises(VaedemoError, match="10 sounds of 1800 s are more audio than one call makes"):
            eng.sample_latents(10, seconds=1800)
        with pytest.raises(VaedemoError, match="10 sounds of .* are more audio than one call makes"):
            eng.path_latents(np.zeros((frames_in_30_min, d)), np.zeros((frames_in_30_min, d)), np.linspace(0, 1, 10))
        assert eng.sample_latents(1, seconds=1e-6).shape == (1, 1, d)  # a length under one frame is one frame, not a clip
        assert eng.sample_latents(1, seconds=1800).shape == (1, frames_in_30_min, d)  # the longest is made
    if mode == "single":  # (the tiny temporal decoder stays finite up to float32's largest number)
        with pytest.raises(VaedemoError, match=r"^the latents \(up to 3.4e\+38 in magnitude\) decode to NaN or "
                                               r"infinite audio: they lie far outside the model's latent space\.$"):
            eng.decode(np.full((2, d), np.finfo(np.float32).max))


def test_an_empty_stream_chunk_leaves_the_channel_count_open(tiny_config, tmp_path):
    """It set the stream's channel count to its own (0, or 3): every later chunk was refused until reset()."""
    eng = _engine(tiny_config, tmp_path, "temporal", causal=True)
    stream = eng.stream()
    assert stream.process(np.zeros((0, 3), np.float32)).shape == (0, 3)
    assert stream.process(np.zeros((eng.hop, 1), np.float32)).shape == (eng.hop, 1)
    with pytest.raises(VaedemoError, match="1-D .* or 2-D"):
        stream.process(np.zeros((0, 1, 1), np.float32))


def test_the_streaming_module_refuses_other_channel_counts_and_latent_sizes(tiny_config, tmp_path):
    """What nn~ loads: a stereo buffer into a mono model streamed its first channel alone, latents of 17 or 32
    dimensions decoded their first 16 (fewer read out of bounds)."""
    from vaedemo.nn.streaming import StreamingVAE, script

    eng = _engine(tiny_config, tmp_path, "temporal", causal=True)
    vae = script(StreamingVAE(eng.model))
    with pytest.raises(Exception, match="a chunk must have 1 channels, got 2"):
        vae.encode(torch.zeros(1, 2, eng.hop))
    for size in (eng.latent_size - 1, eng.latent_size + 1):
        with pytest.raises(Exception, match=f"latents must be \\(batch, {eng.latent_size}, frames\\)"):
            vae.decode(torch.zeros(1, size, 2))
    assert vae.decode(torch.zeros(1, eng.latent_size, 2)).shape == (1, 1, 2 * eng.hop)


def test_clips_run_in_batches_of_similar_cost():
    """Every clip once, at most ``size`` a batch, the cheapest first: a batch runs as far as its longest clip."""
    frames = np.array([86, 3, 40, 86, 12, 3, 60])
    batches = cost_batches(frames, 3)
    assert [len(rows) for rows in batches] == [3, 3, 1]
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(frames)))
    assert [frames[rows].tolist() for rows in batches] == [[3, 3, 12], [40, 60, 86], [86]]
    assert cost_batches(np.array([], dtype=int), 4) == []
