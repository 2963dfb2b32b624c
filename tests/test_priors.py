"""The flow-matching prior learns a distribution; the prior comparison runs end to end on a bundle."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from vaedemo.bundle import save_bundle
from vaedemo.dataset_summary import prior_log_prob
from vaedemo.errors import VaedemoError
from vaedemo.inference import Engine
from vaedemo.nn.fm_prior import FlowMatchingPrior
from vaedemo.nn.vae import AudioVAE
from vaedemo.priors import (
    fit_gaussian,
    nearest,
    replay_share,
    report,
    train_flow_matching,
    typical,
    typical_floor,
    typical_latents,
)
from vaedemo.priors import main as priors_main


def test_flow_matching_moves_noise_onto_the_data():
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((2000, 4)) * 0.3 + np.array([3.0, -2.0, 0.5, 1.0])).astype(np.float32)
    prior = train_flow_matching(data, steps=300)
    x = prior.sample(torch.randn(1000, 4, generator=torch.Generator().manual_seed(1)), steps=16).numpy()
    assert np.allclose(x.mean(0), data.mean(0), atol=0.15) and np.allclose(x.std(0), data.std(0), atol=0.15)


def test_the_velocity_field_starts_untrained_and_the_loss_is_a_scalar():
    prior = FlowMatchingPrior(6, hidden=16, layers=2)
    loss = prior.loss(torch.randn(8, 6))
    assert loss.shape == () and torch.isfinite(loss)
    assert prior.sample(torch.zeros(3, 6), steps=2).shape == (3, 6)


def test_nearest_distances():
    a = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert np.allclose(nearest(a, np.array([[0.0, 1.0]])), [1.0, np.sqrt(18)])
    assert np.allclose(nearest(a, a, same=True), [5.0, 5.0])


def test_priors_cli_compares_three_priors(tiny_config, drum_folder, tmp_path):
    cfg = tiny_config("single", flows=2)
    torch.manual_seed(0)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    out, js = tmp_path / "priors.md", tmp_path / "priors.json"
    other = tmp_path / "other_kit"
    shutil.copytree(drum_folder, other)
    assert priors_main(["--checkpoint", str(path), "--train-data", str(drum_folder), "--data", str(drum_folder),
                        "--data", str(other), "--samples", "6", "--fm-steps", "20", "--out", str(out),
                        "--json", str(js), "--temperature", "0.5", "--draws", "3"]) == 0  # fmt: skip
    result = json.loads(js.read_text())
    folders = result["folders"]
    assert result["draws"] == 3 and result["seeds"] == [0, 1, 2]
    rows, other_rows = folders.values()
    # another folder: 6 of its 12 files are evaluated, the other 6 are the floor's (and say so)
    assert list(folders)[1] == f"{other} (6 of 12 files, not seen in training; the others are the floor's)"
    assert 0.0 <= other_rows["real clips (floor)"]["memorisation"] <= 1.0
    exact, training = "training latents, decoded (an exact prior of the training set)", "training clips (real)"
    cold = "RealNVP, temperature 0.5"
    fitted = "Gaussian fitted to the training latents"
    assert set(rows) == {"Gaussian", fitted, "RealNVP", cold, "flow matching", "reconstructions (decoder bound)",
                         "real clips (floor)", exact, training}  # fmt: skip
    assert rows[cold]["fd"] != rows["RealNVP"]["fd"]  # other draws: the same noise, scaled by the temperature
    assert "memorisation" not in rows[training] and "memorisation" in rows[exact]
    # a prior that replays training latents is seen as one: the exact prior's samples are decoded training latents
    assert rows[exact]["replay"] == 1.0 and all(0.0 <= rows[p]["replay"] <= 1.0 for p in ("Gaussian", "RealNVP"))
    assert "replay" not in rows[training] and "replay" not in rows["reconstructions (decoder bound)"]
    # the folder beside is a copy of the training folder: its clips are training clips, bit for bit
    assert other_rows[training]["fd"] < other_rows["Gaussian"]["fd"]
    assert all(0.0 <= r.get("memorisation", 0) <= 1.0 and r["diversity"] >= 0 for r in rows.values())
    assert "memorisation" not in rows["real clips (floor)"]  # the training folder's floor is its training split
    assert rows["real clips (floor)"]["median_peak_dbfs"] < 0
    # a prior's row is the mean of its three draws; the sets that are not drawn (exact prior, floor, bound) are one
    for prior in ("Gaussian", fitted, "RealNVP", cold, "flow matching"):
        draws = rows[prior]["kid_draws"]
        assert len(set(draws)) == 3 and rows[prior]["kid"] == pytest.approx(np.mean(draws))  # three other draws
    assert all("kid_draws" not in rows[name] for name in (exact, training, "reconstructions (decoder bound)"))
    assert "| flow matching |" in out.read_text() and "(RealNVP also at 0.5)" in out.read_text()


def test_priors_cli_refuses_a_temperature_out_of_range(capsys, tmp_path):
    common = ["--checkpoint", "unused", "--train-data", str(tmp_path), "--data", str(tmp_path)]
    assert priors_main([*common, "--temperature", "0"]) != 0
    assert "--temperature must be above 0 and at most 3, got [0.0]." in capsys.readouterr().err
    assert priors_main([*common, "--typical", "100"]) != 0
    assert "--typical must be a percentile above 0 and below 100, got [100.0]." in capsys.readouterr().err
    # found after the prior's fit and every draw (minutes), or in Engine.sample's words, or never (10^9 ODE steps)
    assert priors_main([*common, "--data", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err == f"error: data folder {tmp_path / 'none'} does not exist.\n"
    for flag, value in [("--samples", "20000"), ("--ode-steps", "1000000000"), ("--fm-steps", "-1")]:
        assert priors_main([*common, flag, value]) == 2
        assert "error: --samples must be 2 to 10000, --fm-steps 0 to 1000000 and --ode-steps 1 to 1000, got" in \
            capsys.readouterr().err  # fmt: skip


def test_typical_draws_keep_the_seeds_own_draws_above_the_floor(tiny_config, tmp_path):
    cfg = tiny_config("single", flows=2)
    torch.manual_seed(0)
    engine = Engine(save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict()))
    plain = engine.sample_latents(40, 1.0, 7, use_flow=True)
    log_p = prior_log_prob(engine, plain)
    floor = float(np.median(log_p))
    z = typical_latents(engine, 40, 7, floor)
    assert z.shape == plain.shape and (prior_log_prob(engine, z) >= floor).all()
    kept = plain[log_p >= floor]  # the seed's own draw first, in its order; the rest from later blocks
    assert np.array_equal(z[: len(kept)], kept) and len(kept) < 40
    assert len(np.unique(z, axis=0)) == 40  # later blocks are other draws, not the first again
    assert np.array_equal(typical_latents(engine, 40, 7, floor), z)  # the same seed, the same samples
    other = typical_latents(engine, 40, 8, floor)  # the next draw's seed: none of its samples are this one's
    assert not (z[:, None, :] == other[None, :, :]).all(-1).any()
    # the floor of --typical P is the P-th percentile of the latents given: at P=20 of the prior's own draws, about
    # four fresh draws in five lie above it
    share = (prior_log_prob(engine, engine.sample_latents(400, 1.0, 9)) >= typical_floor(engine, plain, 20)).mean()
    assert 0.65 < share < 0.95
    with pytest.raises(VaedemoError, match=r"gave 0 of the 40 samples at or above log p 1000000.0: that floor lies"):
        typical_latents(engine, 40, 7, 1e6)
    assert typical(1) == "RealNVP, draws below percentile 1 of the training clips' log p redrawn"


def test_the_report_says_which_draws_were_redrawn():
    result = {"samples": 4, "temperatures": [], "typicals": [1.0, 5.0], "seeds": [0], "fm_steps": 2, "train_clips": 3,
              "ode_steps": 8, "train_peak_dbfs": -17.0, "folders": {}}  # fmt: skip
    text = report("tiny", result)
    assert "RealNVP also with its draws below percentiles 1, 5 of the training clips' latents' log p redrawn" in text
    assert "redrawn" not in report("tiny", result | {"typicals": []})


def test_priors_cli_says_in_one_sentence_when_the_typical_floor_is_out_of_reach(tiny_config, drum_folder, tmp_path,
                                                                                capsys):  # fmt: skip
    """An untrained model encodes every clip at its prior's mode, which no draw of the prior comes as near to."""
    cfg = tiny_config("single", flows=2)
    torch.manual_seed(0)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    assert priors_main(["--checkpoint", str(path), "--train-data", str(drum_folder), "--data", str(drum_folder),
                        "--samples", "4", "--fm-steps", "2", "--draws", "1", "--typical", "1"]) == 2  # fmt: skip
    assert "--typical 1: 256 draws of the prior gave 0 of the 4 samples at or above log p" in capsys.readouterr().err


def test_replay_share_sees_a_prior_that_replays_its_training_latents():
    rng = np.random.default_rng(0)
    real, decoded_train = rng.standard_normal((60, 8)), rng.standard_normal((80, 8))
    recon = rng.standard_normal((60, 8))  # held-out reconstructions: as far from the decoded training set as any sound
    assert replay_share(real, decoded_train, recon, decoded_train[:20]) == 1.0
    assert replay_share(real, decoded_train, recon, rng.standard_normal((40, 8))) < 0.2


def test_priors_cli_refuses_no_draws_in_one_sentence(tiny_config, drum_folder, tmp_path, capsys):
    cfg = tiny_config("single", flows=2)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    assert priors_main(["--checkpoint", str(path), "--train-data", str(drum_folder), "--data", str(drum_folder),
                        "--draws", "0"]) == 2  # fmt: skip
    assert "The priors need at least 1 draw of samples, got 0." in capsys.readouterr().err
    assert priors_main(["--checkpoint", str(path), "--train-data", str(drum_folder), "--data", str(drum_folder),
                        "--draws", "101"]) == 2  # fmt: skip
    assert "--draws may be at most 100, got 101." in capsys.readouterr().err


def test_the_fitted_gaussian_draws_the_latents_mean_and_covariance():
    rng = np.random.default_rng(0)
    mix = np.array([[2.0, 0.0, 0.0], [1.5, 0.5, 0.0], [0.0, -1.0, 0.3]])
    z = rng.standard_normal((4000, 3)) @ mix.T + np.array([1.0, -2.0, 0.5])
    x = fit_gaussian(z)(torch.randn(20000, 3, generator=torch.Generator().manual_seed(1)))
    assert x.dtype == np.float32 and x.shape == (20000, 3)
    assert np.allclose(x.mean(0), z.mean(0), atol=0.05)
    assert np.allclose(np.cov(x, rowvar=False), np.cov(z, rowvar=False), atol=0.1)  # the correlations too, not a diagonal
    assert fit_gaussian(z[:2])(torch.randn(5, 3)).shape == (5, 3)  # fewer latents than dimensions: still a Gaussian


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--samples", "1"], "--samples must be 2 to 10000, --fm-steps 0 to 1000000 and --ode-steps 1 to 1000, got 1, "
                             "4000 and 8."),
        (["--ode-steps", "0"], "--samples must be 2 to 10000, --fm-steps 0 to 1000000 and --ode-steps 1 to 1000, got "
                               "200, 4000 and 0."),
        (["--json", "{tmp}"], "--json {tmp} is a folder; give a file name."),
        (["--seed", "-1"], "--seed must be a whole number from 0 to 2**63 - 1, got -1."),  # numpy's, after the fit
    ],
)  # fmt: skip
def test_priors_cli_refuses_odd_arguments_in_one_sentence(tiny_config, drum_folder, tmp_path, capsys, extra, message):
    """--samples 1 was the metrics' traceback, --ode-steps 0 a ZeroDivisionError, a --json folder IsADirectoryError
    after the whole comparison."""
    cfg = tiny_config("single", flows=2)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    assert priors_main(["--checkpoint", str(path), "--train-data", str(drum_folder), "--data", str(drum_folder),
                        *extra]) == 2  # fmt: skip
    assert capsys.readouterr().err == f"error: {message.replace('{tmp}', str(tmp_path))}\n"


def test_a_folder_of_one_clip_is_one_sentence_and_one_left_over_file_makes_no_floor(tiny_config, drum_folder,
                                                                                    tmp_path, capsys):  # fmt: skip
    cfg = tiny_config("single", flows=2)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    one, three = tmp_path / "one", tmp_path / "three"
    for folder, count in ((one, 1), (three, 3)):
        folder.mkdir()
        for f in sorted(drum_folder.glob("*.wav"))[:count]:
            shutil.copy(f, folder / f.name)
    common = ["--checkpoint", str(path), "--train-data", str(drum_folder), "--fm-steps", "2", "--draws", "1"]
    assert priors_main([*common, "--data", str(one), "--samples", "4"]) == 2
    assert capsys.readouterr().err.endswith(f"error: {one} gave 1 usable clips; the comparison needs at least 2.\n")
    js = tmp_path / "r.json"
    assert priors_main([*common, "--data", str(three), "--samples", "2", "--json", str(js)]) == 0  # 2 of 3: 1 left
    rows = next(iter(json.loads(js.read_text())["folders"].values()))
    assert "real clips (floor)" not in rows and "reconstructions (decoder bound)" in rows
