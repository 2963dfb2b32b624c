"""The level latent of two-stage models: the level map, the prior it gives, and a model that encodes a clip's sound
apart from its peak and restores the peak exactly."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import drum

from vaedemo.bundle import load
from vaedemo.config import load_config
from vaedemo.errors import ConfigError
from vaedemo.inference import Engine
from vaedemo.nn.level import DECODED_FLOOR, PeakLevel, peak_db
from vaedemo.nn.vae import AudioVAE
from vaedemo.train import run

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's notes on tiny data loaders

LEVELS = torch.tensor(np.random.default_rng(0).normal(-18.0, 8.0, 500).clip(-60, -0.5))


def fitted() -> PeakLevel:
    level = PeakLevel()
    level.fit(LEVELS)
    return level


def test_the_level_map_is_the_training_levels_quantiles_and_inverts_everywhere():
    level = fitted()
    probabilities = torch.special.ndtr(level.knots_normal.double())
    assert torch.allclose(level.knots_db.double(), torch.quantile(LEVELS, probabilities), atol=1e-3)
    db = torch.linspace(-90.0, 6.0, 400, dtype=torch.float64)  # past both ends of the training levels too
    u = level.coordinate(db)
    assert torch.all(u[1:] > u[:-1])  # increasing, so invertible
    assert torch.allclose(level.level_db(u), db, atol=1e-9)
    # the median training level is the prior's centre
    assert level.coordinate(LEVELS.median().reshape(1)).abs().item() < 0.05


def test_ties_in_the_training_levels_keep_the_map_invertible():
    level = PeakLevel()
    level.fit(torch.full((50,), -12.0))
    assert torch.all(level.knots_db[1:] > level.knots_db[:-1])
    with pytest.raises(ValueError, match="at least two training clips"):
        level.fit(torch.tensor([-3.0]))


def test_prior_levels_follow_the_training_levels_within_their_1st_to_99th_percentiles():
    level = fitted()
    draws = level.sample(20000, 1.0, torch.Generator().manual_seed(0), "cpu", torch.float64)
    db = level.level_db(draws)
    lo, hi = torch.quantile(LEVELS, torch.tensor([0.01, 0.99], dtype=torch.float64))
    assert db.min() >= lo - 1e-6 and db.max() <= hi + 1e-6
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert abs(torch.quantile(db, q) - torch.quantile(LEVELS, q)) < 1.0  # dB
    same = level.sample(20000, 1.0, torch.Generator().manual_seed(0), "cpu", torch.float64)
    assert torch.equal(draws, same)
    centre = level.level_db(level.sample(3, 0.0, None, "cpu", torch.float32))
    assert torch.allclose(centre, LEVELS.median().float().expand(3), atol=0.2)


def test_normalise_then_restore_gives_back_the_clip_and_silence_stays_finite():
    level = fitted()
    clips = torch.from_numpy(np.stack([drum(16000, 0.1, i) * g for i, g in enumerate([1.0, 0.1, 0.003])]))[:, None]
    normal, u = level.normalise(clips)
    assert torch.allclose(normal.abs().flatten(1).amax(1), torch.full((3,), level.reference_peak))
    assert level.reference_db.item() == pytest.approx(LEVELS.median().item(), abs=0.1)  # the training clips' median
    assert torch.allclose(level.restore(normal, u), clips, atol=1e-6)
    assert torch.allclose(peak_db(clips), level.level_db(u), atol=1e-4)
    silent, u0 = level.normalise(torch.zeros(1, 1, 100))
    assert torch.all(torch.isfinite(silent)) and torch.isfinite(u0).all()
    # a decoded clip far under the reference is not boosted past DECODED_FLOOR
    quiet = level.restore(torch.full((1, 1, 10), DECODED_FLOOR * level.reference_peak / 100), u[:1])
    assert quiet.abs().max() < clips[0].abs().max() / 50


def test_level_latent_is_only_for_two_stage_models(drum_folder, tmp_path):
    from conftest import tiny_overrides

    with pytest.raises(ConfigError, match="level_latent needs model.latent_mode twostage"):
        load_config(None, tiny_overrides(drum_folder, tmp_path, "single", 2) + ["model.level_latent=true"])


@pytest.fixture(scope="module")
def level_model(drum_folder, tmp_path_factory) -> AudioVAE:
    from conftest import tiny_overrides

    cfg = load_config(None, tiny_overrides(drum_folder, tmp_path_factory.mktemp("lv"), "twostage", 2)
                      + ["model.latent_size=6", "model.head_hidden=16", "model.level_latent=true"])  # fmt: skip
    torch.manual_seed(0)
    model = AudioVAE(cfg.model).eval()
    model.level.fit(LEVELS)
    return model


def test_the_sound_is_encoded_apart_from_its_level(level_model):
    x = torch.from_numpy(drum(16000, 0.12, 3))[None, None]
    z, quieter = level_model.encode(x), level_model.encode(0.1 * x)
    assert z.shape == (1, 7)  # 6 learned coordinates + the level
    assert torch.allclose(z[:, :-1], quieter[:, :-1], atol=1e-5)  # the same sound
    assert torch.allclose(level_model.level.level_db(quieter[:, -1]), level_model.level.level_db(z[:, -1]) - 20, atol=1e-3)


def test_decoding_sets_the_level_and_reconstruction_keeps_the_input_peak(level_model):
    n = level_model.clip_length  # whole clips: the peak is set over the clip the model decodes
    x = torch.from_numpy(np.stack([drum(16000, 0.2, i)[:n] * g for i, g in enumerate([0.9, 0.05])]))[:, None]
    with torch.no_grad():
        z = level_model.encode(x)
        normal = level_model.pqmf.synthesis(level_model.decoder(z[:, :-1]))
        y = level_model(x, sample=False).audio
    # where the decoder's output is audible, its peak is exact
    assert torch.all(normal.abs().flatten(1).amax(1) > DECODED_FLOOR * level_model.level.reference_peak)
    assert torch.allclose(y.abs().flatten(1).amax(1), x.abs().flatten(1).amax(1), rtol=1e-4)
    assert torch.allclose(level_model.decode(z), y, atol=1e-6)
    assert y.shape == x.shape


def test_the_prior_base_maps_the_learned_coordinates_and_keeps_the_level(level_model):
    """The level coordinate's prior is a standard Gaussian already: the base space (paths through the prior) moves
    only the coordinates the prior flow models, and maps back exactly."""
    model = AudioVAE(level_model.cfg).eval()
    model.load_state_dict(level_model.state_dict())
    with torch.no_grad():
        for p in model.latent.prior_flow.parameters():  # a flow fresh from init is the identity
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(2)))
        z = model.sample_latents((3, 7), generator=torch.Generator().manual_seed(1))
        u = model.prior_base(z)
        back = model.prior_base(u, inverse=True)
    assert torch.equal(u[:, -1], z[:, -1]) and not torch.allclose(u[:, :-1], z[:, :-1], atol=1e-3)
    assert torch.allclose(back, z, atol=1e-5)


def test_the_whole_level_model_runs_in_float64(level_model):
    model = AudioVAE(level_model.cfg).double().eval()
    model.load_state_dict(level_model.state_dict())
    x = torch.from_numpy(drum(16000, 0.12, 1)).double()[None, None]
    with torch.no_grad():
        z = model.encode(x)
        assert z.dtype == torch.float64 and model.decode(z).dtype == torch.float64
        s = model.sample(2, generator=torch.Generator().manual_seed(0))
        assert s.dtype == torch.float64 and model.prior_log_prob(z).dtype == torch.float64


def test_a_two_stage_run_with_a_level_latent_fits_the_training_levels(tmp_path, backbone):
    """Training clips at known peaks: the bundle's level map is their quantiles; a fine-tune from a bundle without a
    level latent starts from its heads and fits the level afresh."""
    from test_twostage import two_stage_overrides

    folder = tmp_path / "kit"
    folder.mkdir()
    peaks = np.linspace(0.02, 0.9, 16)
    for i, p in enumerate(peaks):
        hit = drum(16000, 0.15, i)
        sf.write(folder / f"hit_{i:02d}.wav", hit * (p / np.abs(hit).max()), 16000, subtype="FLOAT")
    plain = run(None, two_stage_overrides(folder, tmp_path / "plain", backbone), resume=False) / "bundle"
    overrides = two_stage_overrides(folder, tmp_path / "lv", backbone)
    run_dir = run(None, overrides + ["model.level_latent=true", f"train.init_from={plain}"], resume=False)
    bundle = load(run_dir / "bundle")
    assert bundle.config.level_latent
    eng = Engine(bundle)
    knots = bundle.model.level.knots_db
    levels = 20 * np.log10(peaks)
    assert knots.min() >= levels.min() - 1e-3 and knots.max() <= levels.max() + 1e-3
    assert float(knots[-1] - knots[0]) > 10  # spread over the training levels, not the -40..0 placeholder
    z = eng.encode(drum(16000, 0.12, 2), 16000)
    assert z.shape == (1, 7)
    s = eng.sample(8, seed=0)
    assert s.shape == (8, 2048, 1) and np.all(np.isfinite(s))
