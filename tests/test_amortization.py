"""The amortisation-gap diagnosis: the evaluation's log-mel L1 of the encoder's latents and of refined ones."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import torch

from vaedemo.amortization import folder_gap, main
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


def test_bad_arguments_get_one_sentence(backbone, drum_folder, capsys):
    assert main(["--checkpoint", str(backbone), "--data", str(drum_folder), "--clips", "0"]) != 0
    assert capsys.readouterr().err.strip() == "error: --clips must be at least 1, --steps not negative and --lr positive."
