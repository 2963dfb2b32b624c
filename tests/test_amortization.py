"""The amortisation-gap diagnosis: the evaluation's log-mel L1 of the encoder's latents and of refined ones."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from vaedemo.amortization import folder_gap, main, report
from vaedemo.evaluate import default_seconds, evaluation_sets, load_clips
from vaedemo.inference import Engine


def test_refined_latents_decode_closer_and_the_model_is_left_as_it_was(backbone, tmp_path):
    # noise: at the tiny random model's latents of the test drum hits, every small move of the latent (either way along
    # the gradient) raised the loss (a kink of the L1); noise clips give the refinement a slope to go down
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(tmp_path / f"noise_{i}.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    engine = Engine(backbone)
    before = {k: v.clone() for k, v in engine.model.state_dict().items()}
    grads = [p.requires_grad for p in engine.model.parameters()]
    row = folder_gap(engine, tmp_path, clips=3, steps=8, lr=0.005)
    assert row["clips"] == 3 and row["steps"] == 8
    assert row["refined"] < row["encoder"] - 0.05
    assert row["latent_shift_rms"] > 0
    assert all(torch.equal(v, engine.model.state_dict()[k]) for k, v in before.items())
    assert [p.requires_grad for p in engine.model.parameters()] == grads
    unrefined = folder_gap(engine, tmp_path, clips=2, steps=0, lr=0.005)
    assert unrefined["refined"] == unrefined["encoder"] and unrefined["latent_shift_rms"] == 0
    assert unrefined["refined_nats"] == unrefined["encoder_nats"]
    held = folder_gap(engine, tmp_path, clips=3, steps=8, lr=0.005, prior_weight=1.0)  # a MAP search
    assert held["prior_weight"] == 1.0 and held["refined_nats"] < row["refined_nats"]


def test_bad_arguments_get_one_sentence(backbone, drum_folder, capsys):
    assert main(["--checkpoint", str(backbone), "--data", str(drum_folder), "--clips", "0"]) != 0
    assert capsys.readouterr().err.strip() == ("error: --clips must be at least 1, --steps and --prior-weight not negative "
                                               "and --lr positive.")  # fmt: skip


def test_a_one_vector_flow_model_with_a_summary_reports_the_demos_typicality(drum_folder, tmp_path):
    from e2e.bundles import tiny_bundles

    from vaedemo import dataset_summary
    from vaedemo.demo import typicality as demo_typicality

    bundle = tiny_bundles(tmp_path / "bundles", ("tiny_single_flow",))["tiny_single_flow"]
    assert dataset_summary.main([str(bundle), "--data", str(drum_folder)]) == 0  # its training-set reference
    engine = Engine(bundle)
    row = folder_gap(engine, drum_folder, clips=4, steps=2, lr=0.05)
    median, below = row["encoder_typicality"]
    files, _, _ = evaluation_sets(drum_folder, engine, 200)
    clips = load_clips(files, engine.sample_rate, round(default_seconds(engine) * engine.sample_rate), 1, 4)
    by_hand = [demo_typicality.percentile(engine, engine.encode(c, engine.sample_rate)[0]).percentile for c in clips]
    assert median == pytest.approx(float(np.median(by_hand))) and below == sum(p < 1 for p in by_hand)
    unrefined = folder_gap(engine, drum_folder, clips=4, steps=0, lr=0.05)
    assert unrefined["refined_typicality"] == unrefined["encoder_typicality"] == row["encoder_typicality"]
    assert row["latent_spread"] > 0
    one = folder_gap(engine, drum_folder, clips=1, steps=0, lr=0.05)  # one vector has no spread (was NaN)
    assert one["latent_spread"] is None and "| — |" in report("b", [one], 0.05)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lr", "nan"], "--clips must be at least 1, --steps and --prior-weight not negative and --lr positive."),
        (["--steps", "100000"], "--steps must be at most 1000, got 100000."),
        (["--out", "{tmp}"], "--out {tmp} is a folder; give a file name."),
    ],
)  # fmt: skip
def test_odd_arguments_and_a_folder_without_usable_clips_get_one_sentence(backbone, tmp_path, capsys, extra, message):
    """--lr nan was torch's traceback, --steps unbounded (hours of search), an --out folder IsADirectoryError after
    the searches, a folder of undecodable files numpy's "need at least one array to stack"."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.wav").write_bytes(b"RIFF not a wave file")
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    assert main(["--checkpoint", str(backbone), "--data", str(bad), "--steps", "1", *extra]) == 2
    assert capsys.readouterr().err == f"error: {message.replace('{tmp}', str(tmp_path))}\n"
    assert main(["--checkpoint", str(backbone), "--data", str(bad), "--steps", "1"]) == 2
    assert capsys.readouterr().err.endswith(f"error: {bad} gave no usable clips to measure the amortisation gap on.\n")
