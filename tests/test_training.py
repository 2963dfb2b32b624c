"""Training: the three phases switch at the configured steps, a killed run resumes, 2-process DDP on CPU."""

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from conftest import ROOT, tiny_overrides

import vaedemo
from vaedemo.config import load_config
from vaedemo.errors import ConfigError, VaedemoError
from vaedemo.train import build_trainer, make_loaders
from vaedemo.training.module import VAEModule, beta_at, lr_factor_at, phase_at


class Recorder(pl.Callback):
    """Parameter checksums after every training batch."""

    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        def total(m):
            return sum(float(p.detach().double().sum()) for p in m.parameters())

        self.rows.append((int(module.step), total(module.discriminator), total(module.vae.encoder), total(module.vae.decoder)))


def test_phase_and_beta_schedules(tiny_config):
    cfg = tiny_config(train__vae_steps=10, train__discriminator_warmup_len=5, train__beta_warmup_steps=100,
                      train__beta=0.1, train__beta_start=0.001)
    assert [phase_at(cfg, s) for s in (0, 9, 10, 14, 15, 1000)] == [
        "vae", "vae", "discriminator_warmup", "discriminator_warmup", "adversarial", "adversarial"]
    assert beta_at(cfg, 0) == pytest.approx(0.001) and beta_at(cfg, 50) == pytest.approx(0.01)
    assert beta_at(cfg, 100) == beta_at(cfg, 5000) == pytest.approx(0.1)


def test_learning_rate_decays_log_linearly_after_its_start(tiny_config, tmp_path):
    cfg = tiny_config(train__max_steps=6, train__lr_decay_start=2, train__lr_final_factor=0.01,
                      train__val_every_n_steps=6)
    assert [round(lr_factor_at(cfg, s), 6) for s in (0, 2, 4, 6, 9)] == [1.0, 1.0, 0.1, 0.01, 0.01]
    assert lr_factor_at(tiny_config(train__max_steps=6), 5) == 1.0  # no decay unless asked for
    pl.seed_everything(0)
    train, val, summary = make_loaders(cfg)
    module = VAEModule(cfg)
    trainer = build_trainer(cfg, Path(cfg.train.run_dir), "test", summary)
    trainer.fit(module, train, val)
    gen, dis = (o.optimizer if hasattr(o, "optimizer") else o for o in module.optimizers())
    # the last step (step 5) ran at factor 0.01 ** (3 / 4)
    assert gen.param_groups[0]["lr"] == pytest.approx(cfg.train.lr * 0.01 ** 0.75)
    assert dis.param_groups[0]["lr"] == pytest.approx(cfg.train.disc_lr * 0.01 ** 0.75)


def test_phases_switch_at_configured_steps(tiny_config, tmp_path):
    cfg = tiny_config(train__max_steps=9, train__vae_steps=3, train__discriminator_warmup_len=3,
                      train__freeze_encoder=True, train__val_every_n_steps=9)
    pl.seed_everything(0)
    train, val, summary = make_loaders(cfg)
    module = VAEModule(cfg)
    rec = Recorder()
    trainer = build_trainer(cfg, Path(cfg.train.run_dir), "test", summary, extra_callbacks=[rec])
    trainer.fit(module, train, val)
    assert module.phase_changes == [(0, "vae"), (3, "discriminator_warmup"), (6, "adversarial")]
    steps, disc, enc, dec = zip(*rec.rows)
    assert steps == tuple(range(1, 10))
    assert len(set(disc[:3])) == 1, "the discriminator must not train in the VAE phase"
    assert len(set(disc[2:])) == 7, "the discriminator trains from the discriminator warm-up on"
    assert len(set(dec)) == 9, "the decoder trains in every phase"
    assert len(set(enc[5:])) == 1 and len(set(enc[:6])) == 6, "the encoder is frozen in the adversarial phase"
    assert "train/adv" in trainer.callback_metrics  # adversarial losses were logged in the last epoch
    bundle = vaedemo.load(Path(cfg.train.run_dir) / "bundle")
    assert bundle.meta["step"] == 9 and bundle.meta["phase"] == "adversarial"
    # the discriminator never ships in a bundle
    assert not any(k.startswith("discriminator") for k in bundle.model.state_dict())


def _encoder_and_decoder_sums_per_step(cfg, module, train, val, summary) -> tuple[tuple, tuple]:
    """Train ``module`` as configured: the sums of its encoder's and its decoder's parameters after every step."""
    rec = Recorder()
    build_trainer(cfg, Path(cfg.train.run_dir), "test", summary, extra_callbacks=[rec]).fit(module, train, val)
    _, _, enc, dec = zip(*rec.rows)
    return enc, dec


def test_a_decoder_fine_tune_on_posterior_means_keeps_the_encoder_and_its_latent_space(tiny_config, tmp_path):
    """train.decode_posterior_mean: the encoder never moves (so a two-stage model's trajectories stay valid) while
    the decoder trains, from the posterior mean: the step's loss is deterministic, with no KL in it."""
    cfg = tiny_config("temporal", 0, train__max_steps=4, train__vae_steps=4, train__decode_posterior_mean=True,
                      train__val_every_n_steps=4)  # fmt: skip
    pl.seed_everything(0)
    train, val, summary = make_loaders(cfg)
    module = VAEModule(cfg)
    batch = next(iter(train))
    first, again = module.vae(batch, sample=False), module.vae(batch, sample=False)
    torch.testing.assert_close(module.generator_loss(first, "vae", 0)[0], module.generator_loss(again, "vae", 0)[0])
    assert float(module.generator_loss(first, "vae", 0)[1]["train/kl"]) == 0.0
    enc, dec = _encoder_and_decoder_sums_per_step(cfg, module, train, val, summary)
    assert len(set(enc)) == 1, "the encoder must not move"
    assert len(set(dec)) == 4, "the decoder trains every step"


def test_a_decoder_fine_tune_on_posterior_means_leaves_the_posterior_flow_as_it_is(tiny_config):
    """train.decode_posterior_mean freezes the encoder and the posterior: the posterior flow, between the encoder and
    the mean, got the reconstruction's gradient (with no KL holding it to the prior), so every clip's latent moved
    away from the prior the model samples from."""
    torch.manual_seed(0)
    cfg = tiny_config("single", flows=2, train__decode_posterior_mean=True)
    module = VAEModule(cfg)
    out = module.forward_for_training(0.3 * torch.randn(2, 1, cfg.model.clip_length), "vae")
    module.generator_loss(out, "vae", 0)[0].backward()
    grads = {n: p.grad for n, p in module.vae.named_parameters()}
    assert all(g is None for n, g in grads.items() if n.startswith(("encoder.", "latent.posterior_flow.")))
    assert any(n.startswith("latent.posterior_flow.") for n in grads)
    assert all(g is not None for n, g in grads.items() if n.startswith("decoder."))


def test_an_encoder_fine_tune_keeps_the_decoder_and_trains_the_encoder_on_the_means_it_decodes(tiny_config, tmp_path):
    """train.freeze_decoder: the decoder never moves while the encoder trains; the step decodes the posterior mean
    (deterministic reconstruction) and its loss keeps the posterior's KL."""
    cfg = tiny_config("temporal", 0, train__max_steps=4, train__vae_steps=4, train__freeze_decoder=True,
                      train__beta=0.01, train__beta_warmup_steps=0, train__val_every_n_steps=4)  # fmt: skip
    pl.seed_everything(0)
    train, val, summary = make_loaders(cfg)
    module = VAEModule(cfg)
    batch = next(iter(train))
    out = module.forward_for_training(batch, "vae")
    torch.testing.assert_close(out.audio, module.vae(batch, sample=False).audio)
    assert float(module.generator_loss(out, "vae", 0)[1]["train/kl"]) > 0.0
    enc, dec = _encoder_and_decoder_sums_per_step(cfg, module, train, val, summary)
    assert len(set(dec)) == 1, "the decoder must not move"
    assert len(set(enc)) == 4, "the encoder trains every step"


def test_a_spectral_encoder_learns_its_teachers_statistics_then_from_the_frozen_decoder(tiny_config, tmp_path):
    """train.encoder_distill_steps: a spectral encoder over a wave bundle's decoder first learns that bundle's encoder's
    posterior statistics (the loss falls; nothing is decoded), then from the decoded audio; the decoder never moves."""
    from conftest import jitter_weights

    from vaedemo.bundle import save_bundle
    from vaedemo.nn.vae import AudioVAE
    from vaedemo.train import init_weights

    wave = AudioVAE(tiny_config("temporal", 0).model)
    jitter_weights(wave)
    teacher = save_bundle(wave, tmp_path / "wave")
    cfg = tiny_config("temporal", 0, model__encoder="spectral", model__encoder_width=8, train__max_steps=14,
                      train__vae_steps=14, train__freeze_decoder=True, train__init_from=teacher,
                      train__encoder_distill_steps=12, train__lr=3e-3, train__val_every_n_steps=14)  # fmt: skip
    pl.seed_everything(0)
    train, val, summary = make_loaders(cfg)
    module = VAEModule(cfg)
    init_weights(module.vae, str(teacher), new_encoder=True)
    batch = next(iter(train))
    losses = [float(module.distillation_loss(batch)[0].detach())]
    enc, dec = _encoder_and_decoder_sums_per_step(cfg, module, train, val, summary)
    losses.append(float(module.distillation_loss(batch)[0].detach()))
    assert losses[1] < 0.5 * losses[0], losses
    assert len(set(dec)) == 1, "the decoder must not move"
    assert len(set(enc)) == 14, "the encoder trains every step, distilled or not"
    assert not any(k.startswith("teacher") for k in module.state_dict())  # never in the run's checkpoints


def test_distillation_needs_a_frozen_decoder_and_a_teacher_of_another_kind(tiny_config, tmp_path):
    from conftest import jitter_weights

    from vaedemo.bundle import save_bundle
    from vaedemo.nn.vae import AudioVAE
    from vaedemo.training.module import distillation_teacher

    with pytest.raises(ConfigError, match="train.encoder_distill_steps needs train.freeze_decoder, train.init_from"):
        tiny_config("temporal", 0, train__encoder_distill_steps=5)
    spectral = dict(model__encoder="spectral", model__encoder_width=8)
    teacher = save_bundle(AudioVAE(tiny_config("temporal", 0, **spectral).model), tmp_path / "spectral")
    cfg = tiny_config("temporal", 0, train__freeze_decoder=True, train__init_from=teacher, train__encoder_distill_steps=5,
                      **spectral)  # fmt: skip
    with pytest.raises(ConfigError, match="has the same model.encoder .spectral.; set it to 0"):  # the loss was 0
        distillation_teacher(cfg)
    # the teacher is read when its steps train, not when the module is built (a resumed run past them, a summary)
    cfg = tiny_config("temporal", 0, train__freeze_decoder=True, train__init_from=tmp_path / "gone",
                      train__encoder_distill_steps=5, **spectral)  # fmt: skip
    module = VAEModule(cfg)
    wave = AudioVAE(tiny_config("temporal", 0).model)
    jitter_weights(wave)
    module.cfg.train.init_from = str(save_bundle(wave, tmp_path / "wave"))
    x = 0.1 * torch.randn(2, 1, cfg.model.clip_length, dtype=torch.float64)
    loss = module.double().distillation_loss(x)[0]  # a float64 run (64-true): the teacher follows the batch's dtype
    assert loss.dtype == torch.float64 and float(loss.detach()) > 0


def test_a_run_from_a_bundle_of_the_other_encoder_kind_trains_that_stack_or_is_refused(drum_folder, tmp_path):
    """A wave config started from a spectral bundle (a config written for the wave backbone once the shipped one had a
    spectral encoder) trained on from an untrained encoder; now refused, and a run that trains the new stack over the
    bundle's frozen decoder starts."""
    from vaedemo.bundle import save_bundle
    from vaedemo.errors import VaedemoError
    from vaedemo.nn.vae import AudioVAE
    from vaedemo.train import _module_and_data

    spectral = ["model.encoder=spectral", "model.encoder_width=8"]
    cfg = load_config(None, tiny_overrides(drum_folder, tmp_path / "a", "temporal", 0) + spectral)
    bundle = save_bundle(AudioVAE(cfg.model), tmp_path / "spectral")
    wave = tiny_overrides(drum_folder, tmp_path / "b", "temporal", 0) + [f"train.init_from={bundle}"]
    with pytest.raises(VaedemoError, match="has model.encoder spectral and this model wave, whose stack would start"):
        _module_and_data(load_config(None, wave))
    assert _module_and_data(load_config(None, wave + ["train.freeze_decoder=true"]))[0].vae.cfg.encoder == "wave"


def test_freezing_both_halves_is_refused(tiny_config):
    with pytest.raises(ConfigError, match="opposite halves"):
        tiny_config("temporal", 0, train__freeze_decoder=True, train__decode_posterior_mean=True)


def _train_cmd(drum_folder, run_dir, *extra):
    sets = tiny_overrides(drum_folder, run_dir, "temporal", 0) + list(extra)
    return [sys.executable, "-m", "vaedemo.train"] + [a for s in sets for a in ("--set", s)]


def _train_here(drum_folder, run_dir, *extra, resume: bool = False) -> int:
    """The training command run in this process: its exit status; what it printed is capsys's (a process of its own
    pays ~5 s of imports; the tests that need one, a kill or a signal, start one)."""
    from vaedemo.train import main

    sets = tiny_overrides(drum_folder, run_dir, "temporal", 0) + list(extra)
    try:
        return main([a for s in sets for a in ("--set", s)] + (["--resume"] if resume else []))
    finally:  # a run stopped before its first batch leaves its progress bar to the garbage collector: closed here,
        gc.collect()  # while the test's output is captured (else it printed after the session's summary)


def _ckpt_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["state_dict"]["step"])


def test_killed_training_resumes_where_it_stopped(drum_folder, tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    common = ["train.checkpoint_every_n_steps=1", "train.val_every_n_steps=1000", "train.vae_steps=2",
              "train.discriminator_warmup_len=2"]
    proc = subprocess.Popen(_train_cmd(drum_folder, run_dir, "train.max_steps=100000", *common), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if last.is_file() and _ckpt_step(last) >= 5:
                break
            time.sleep(0.2)
        else:
            pytest.fail("training never wrote a checkpoint at step 5")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    saved = _ckpt_step(last)
    # without --resume the run folder is protected
    again = subprocess.run(_train_cmd(drum_folder, run_dir, "train.max_steps=10", *common), cwd=ROOT, env=env,
                           capture_output=True, text=True)
    assert again.returncode == 2 and "pass --resume to continue it" in again.stderr
    target = saved + 3
    res = subprocess.run(_train_cmd(drum_folder, run_dir, f"train.max_steps={target}") + ["--resume"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"[vaedemo] step {saved}: phase" in res.stdout + res.stderr  # continued at the saved step, not 0
    for noise in ("💡 Tip", "Trainer already configured with model summary", "LeafSpec"):  # Lightning's, every run
        assert noise not in res.stdout + res.stderr
    assert _ckpt_step(last) == target
    meta = json.loads((run_dir / "bundle" / "config.json").read_text())["meta"]
    assert meta["step"] == target


def _signalled_after_its_first_validation(drum_folder, run_dir: Path, sig: int) -> tuple[int, str]:
    """(exit status, stderr) of a training sent ``sig`` once past its first validation (step 2), with no periodic
    checkpoint before step 100000: what it saved, it saved for the signal."""
    common = ["train.checkpoint_every_n_steps=100000", "train.val_every_n_steps=2", "train.vae_steps=100000"]
    # SIGINT as a terminal sends it: a shell's background job (CI's, say) starts with it ignored, and Python then
    # installs no KeyboardInterrupt for it, so the training went on
    proc = subprocess.Popen(_train_cmd(drum_folder, run_dir, "train.max_steps=100000", *common), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.time() + 120
    while not (run_dir / "bundle" / "config.json").is_file():
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("training never reached its first validation")
        time.sleep(0.2)
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=120)
    finally:  # a training that went on (the signal ignored) would train on past the test, for ever
        proc.kill()
        proc.wait()
    return proc.returncode, err


def test_a_training_stopped_by_sigterm_saves_where_it_is_and_says_so(drum_folder, tmp_path):
    """SIGTERM (kill, docker stop, systemd, timeout) saves last.ckpt as Ctrl-C does, and the exit status says the
    run did not finish (Lightning's SIGTERMException alone exits 0 with nothing saved)."""
    run_dir = tmp_path / "run"
    returncode, err = _signalled_after_its_first_validation(drum_folder, run_dir, signal.SIGTERM)
    assert returncode == 128 + signal.SIGTERM, err[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    saved = _ckpt_step(last)
    assert saved >= 2 and f"stopped by SIGTERM at step {saved}" in err and "Traceback" not in err
    # resumed through a --config file edited since: the run's stored config is used, and the warning says where the
    # file differs (a learning rate edited in the file was silently not used)
    edited = tmp_path / "edited.yaml"
    edited.write_text((run_dir / "config.yaml").read_text().replace("lr: ", "lr: 0.5 #", 1))
    res = subprocess.run(_train_cmd(drum_folder, run_dir, f"train.max_steps={saved + 1}") + ["--resume", "--config",
                         str(edited)], cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0 and _ckpt_step(last) == saved + 1, res.stderr[-3000:]
    stored_lr = load_config(run_dir / "config.yaml").train.lr
    assert stored_lr != 0.5 and (f"warning: --resume continues with the run's own config ({run_dir / 'config.yaml'}) "
                                 f"and --set, not {edited}, which differs from it (train.lr: {stored_lr} in the run, "
                                 "0.5 in the file); pass --set KEY=VALUE") in res.stderr  # fmt: skip


def test_a_training_stopped_by_ctrl_c_says_where_it_saved(drum_folder, tmp_path):
    """Ctrl-C saved the step but printed only Lightning's "Detected KeyboardInterrupt" and exited 1, as any error."""
    run_dir = tmp_path / "run"
    returncode, err = _signalled_after_its_first_validation(drum_folder, run_dir, signal.SIGINT)
    saved = _ckpt_step(run_dir / "checkpoints" / "last.ckpt")
    assert returncode == 128 + signal.SIGINT and saved >= 2, err[-3000:]
    assert f"stopped by Ctrl-C at step {saved}, saved in {run_dir / 'checkpoints' / 'last.ckpt'}; continue it with " \
           "--resume" in err and "Traceback" not in err  # fmt: skip


def test_a_run_killed_during_a_validation_validates_that_step_when_resumed(drum_folder, tmp_path):
    """Each step's checkpoint is saved before that step's validation: a run killed (or stopped by SIGTERM) during it
    resumes after the step, whose bundle would never be made."""
    run_dir = tmp_path / "run"
    common = ["train.val_every_n_steps=2", "train.checkpoint_every_n_steps=1"]
    assert _train_here(drum_folder, run_dir, "train.max_steps=2", *common) == 0
    # as if killed during step 2's validation: its checkpoint saved, no bundle of it; and the latest bundle's config
    # emptied by a power cut (it stopped the resume: "not valid JSON"), which that validation's bundle replaces
    shutil.rmtree(run_dir / "bundles")
    (run_dir / "bundle" / "config.json").write_text("")
    assert _train_here(drum_folder, run_dir, "train.max_steps=4", *common, resume=True) == 0
    assert sorted(p.name for p in (run_dir / "bundles").iterdir()) == ["step-0000002", "step-0000004"]
    assert json.loads((run_dir / "bundles" / "step-0000002" / "config.json").read_text())["meta"]["step"] == 2
    assert _ckpt_step(run_dir / "checkpoints" / "last.ckpt") == 4


def _audio_tags(run_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"audio": 0})
    events.Reload()
    return set(events.Tags()["audio"])


def test_validation_audio_goes_to_tensorboard_every_n_validations_and_never_at_0(drum_folder, tmp_path):
    common = ["train.max_steps=2", "train.val_every_n_steps=1"]
    for every, logged in ((1, True), (0, False)):  # 0 logged at every validation before (it meant 1)
        run_dir = tmp_path / f"every-{every}"
        assert _train_here(drum_folder, run_dir, *common, f"train.log_audio_every_n_val={every}") == 0
        assert bool(_audio_tags(run_dir)) == logged


def test_resuming_a_finished_run_trains_nothing(drum_folder, tmp_path, caplog):
    """A run resumed at its train.max_steps stops before any batch (Lightning would run one more step) and writes
    the bundle of that step (a run stopped before its last validation has none)."""
    run_dir = tmp_path / "run"
    common = ["train.max_steps=2", "train.val_every_n_steps=2", "train.checkpoint_every_n_steps=1"]
    assert _train_here(drum_folder, run_dir, *common) == 0
    caplog.clear()
    with caplog.at_level("INFO"):  # (Lightning's rank-zero log)
        assert _train_here(drum_folder, run_dir, *common, resume=True) == 0
    assert "the run is at step 2 and train.max_steps is 2: nothing to train" in caplog.text
    assert _ckpt_step(run_dir / "checkpoints" / "last.ckpt") == 2
    assert json.loads((run_dir / "bundle" / "config.json").read_text())["meta"]["step"] == 2
    shutil.rmtree(run_dir / "bundle")  # as if stopped between its last checkpoint and its last validation
    assert _train_here(drum_folder, run_dir, *common, resume=True) == 0
    assert _ckpt_step(run_dir / "checkpoints" / "last.ckpt") == 2
    assert json.loads((run_dir / "bundle" / "config.json").read_text())["meta"]["step"] == 2


def test_a_resume_that_would_change_the_model_is_one_sentence(drum_folder, tmp_path, capsys):
    run_dir = tmp_path / "run"
    common = ["train.max_steps=2", "train.val_every_n_steps=2", "train.checkpoint_every_n_steps=1"]
    assert _train_here(drum_folder, run_dir, *common) == 0
    capsys.readouterr()
    assert _train_here(drum_folder, run_dir, "train.max_steps=4", "model.latent_size=3", resume=True) == 2
    err = capsys.readouterr().err
    assert "--resume continues the run's model, and --set changes it (model.latent_size:" in err
    assert err.count("\n") == 1  # one sentence, no traceback
    assert _ckpt_step(run_dir / "checkpoints" / "last.ckpt") == 2  # the run is as it was
    # the discriminator's weights are in last.ckpt too: a change was torch's size-mismatch traceback, after the run's
    # config.yaml had been replaced by the changed one (so that a plain --resume failed as well from then on)
    assert _train_here(drum_folder, run_dir, *common, "train.discriminator.capacity=3", resume=True) == 2
    err = capsys.readouterr().err
    assert "--resume continues the run's discriminator, and --set changes it (train.discriminator.capacity: 2 in " \
           "the run, 3 asked)" in err and err.count("\n") == 1
    assert load_config(run_dir / "config.yaml").train.discriminator.capacity == 2


def test_a_two_stage_resume_that_would_change_which_weights_train_is_one_sentence():
    """A two-stage run's optimiser holds only the weights that train: resumed with another train.freeze_* or
    train.finetune_decoder, torch refused its parameter groups with a traceback."""
    from vaedemo.train import _check_same_training_state

    two = ["model.latent_mode=twostage", "model.prior_flow_layers=2"]
    stored = load_config(None, two)
    _check_same_training_state(stored, load_config(None, [*two, "train.max_steps=5000", "train.lr=0.0001"]))
    with pytest.raises(VaedemoError, match=r"changes which weights train \(train.freeze_encoder: False in the run, "
                                           r"True asked\)"):  # fmt: skip
        _check_same_training_state(stored, load_config(None, [*two, "train.freeze_encoder=true"]))


def test_a_run_dir_that_cannot_hold_the_run_is_one_sentence_before_any_data_is_read(tmp_path, capsys):
    """It was a FileExistsError (or NotADirectoryError) traceback once the data had been read and the model built."""
    from vaedemo.train import main

    (tmp_path / "taken").write_text("")
    for run_dir, says in [(tmp_path / "taken", "is a file"), (tmp_path / "taken" / "run", "lies under")]:
        argv = ["--set", f"train.run_dir={run_dir}", "--set", f"data.root={tmp_path / 'no_such_folder'}"]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: train.run_dir {run_dir} {says}") and "\n" not in err


def test_a_run_folder_another_training_is_using_is_refused(drum_folder, tmp_path, capsys):
    """Two trainings in one folder both wrote its last.ckpt (through one temporary file) and its bundles: the run's
    checkpoint became the other's. The lock is the kernel's, so a killed training leaves none (the kill test resumes)."""
    from vaedemo.training.run_lock import RunLock

    run_dir = tmp_path / "run"
    with RunLock(run_dir):  # another training's, as far as the kernel's locks go (an open file of its own)
        assert _train_here(drum_folder, run_dir, "train.max_steps=1") == 2
        assert _train_here(drum_folder, run_dir, "train.max_steps=1", resume=True) == 2
    err = capsys.readouterr().err
    assert err.count(f"error: {run_dir} is in use by another training (process {os.getpid()}); wait for it") == 2
    assert not (run_dir / "config.yaml").exists()
    assert _train_here(drum_folder, run_dir, "train.max_steps=1") == 0  # released


def test_a_run_folder_with_bundles_but_no_checkpoint_is_not_trained_over(drum_folder, tmp_path, capsys):
    """A new run in a folder whose checkpoint is gone replaced its config and bundles silently; --resume in a folder
    whose run stopped before it saved anything (a restart loop's command) starts it again."""
    run_dir = tmp_path / "run"
    common = ["train.val_every_n_steps=2", "train.checkpoint_every_n_steps=1"]
    assert _train_here(drum_folder, run_dir, "train.max_steps=2", *common) == 0
    (run_dir / "checkpoints" / "last.ckpt").unlink()
    kept = (run_dir / "bundle" / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert _train_here(drum_folder, run_dir, "train.max_steps=4", *common) == 2
    assert (f"error: {run_dir} holds an earlier run's bundle and bundles but no checkpoint to continue it from"
            in capsys.readouterr().err)  # fmt: skip
    assert (run_dir / "bundle" / "model.safetensors").read_bytes() == kept
    shutil.rmtree(run_dir / "bundle")
    shutil.rmtree(run_dir / "bundles")  # now only its config.yaml, as a run killed before its first checkpoint
    assert _train_here(drum_folder, run_dir, "train.max_steps=2", *common, resume=True) == 0
    assert f"note: {run_dir} holds no checkpoint yet" in capsys.readouterr().err
    assert _ckpt_step(run_dir / "checkpoints" / "last.ckpt") == 2


def test_a_config_of_a_model_above_the_bundles_limit_is_one_sentence_before_it_is_built(tmp_path, capsys):
    """model.capacity=4096 is 15 G parameters (62 GB): building it ran out of memory (a bundle's config is refused)."""
    from vaedemo.summary import main as summary
    from vaedemo.train import main as train

    sets = ["--set", "model.capacity=4096", "--set", f"train.run_dir={tmp_path / 'run'}"]
    assert train(["--config", "configs/drums_temporal.yaml", *sets]) == 2
    assert summary(["--config", "configs/drums_temporal.yaml", *sets]) == 2
    err = capsys.readouterr().err
    assert err.count("error: configs/drums_temporal.yaml with overrides model.capacity=4096 train.run_dir=") == 2
    assert "describes a model of 15442 M parameters, above the limit of 200 M" in err
    assert not (tmp_path / "run").exists()


def test_resume_without_checkpoint_is_a_clear_error(drum_folder, tmp_path):
    res = subprocess.run(_train_cmd(drum_folder, tmp_path / "fresh", "train.max_steps=2") + ["--resume"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 2 and "nothing to resume" in res.stderr and "Traceback" not in res.stderr


def test_bad_config_key_from_the_cli(tmp_path):
    res = subprocess.run([sys.executable, "-m", "vaedemo.train", "--config", "configs/temporal_mono.yaml", "--set",
                          "model.latnet_size=3"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "unknown key 'model.latnet_size'" in res.stderr and "did you mean 'model.latent_size'" in res.stderr


def test_two_process_ddp_on_cpu(drum_folder, tmp_path):
    run_dir = tmp_path / "ddp"
    cmd = _train_cmd(drum_folder, run_dir, "train.max_steps=3", "train.val_every_n_steps=3", "train.vae_steps=1",
                     "train.discriminator_warmup_len=1", "trainer.accelerator=cpu", "trainer.devices=2",
                     "trainer.strategy=ddp", "train.batch_size=2")
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    assert "distributed_backend=gloo" in out and "All distributed processes registered" in out
    assert sorted(p.name for p in (run_dir / "bundles").iterdir()) == ["step-0000003"]
    bundle = vaedemo.load(run_dir / "bundle")
    assert bundle.meta["step"] == 3 and "2 processes" in bundle.meta["hardware"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
@pytest.mark.parametrize("accelerator, message", [
    ("gpu", "error: the trainer settings cannot run on this machine:"),
    ("tpu", "error: the trainer settings need a package this machine does not have:"),  # torch_xla: ImportError
])  # fmt: skip
def test_a_trainer_setting_this_machine_cannot_run_is_one_sentence_before_any_data_is_read(tmp_path, capsys,
                                                                                          accelerator, message):  # fmt: skip
    from vaedemo.train import main

    missing = tmp_path / "no_such_folder"  # the data would be refused too, but the trainer is built first
    argv = ["--config", str(ROOT / "configs" / "temporal_mono.yaml"), "--set", f"trainer.accelerator={accelerator}",
            "--set", f"train.run_dir={tmp_path / 'run'}", "--set", f"data.root={missing}"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_a_two_stage_resume_compares_what_the_backbone_does_not_set():
    """A two-stage run stores its backbone's architecture whatever --set said; resumed with the same --set, those keys
    differ from the stored ones and must not refuse the resume. Its own keys still must match."""
    from vaedemo.config import load_config
    from vaedemo.train import _check_same_model

    stored = load_config(None, ["model.latent_mode=twostage", "model.capacity=32"]).model
    _check_same_model(stored, load_config(None, ["model.latent_mode=twostage", "model.capacity=8"]).model)
    with pytest.raises(VaedemoError, match=r"model.head_hidden: 512 in the run, 64 asked"):
        _check_same_model(stored, load_config(None, ["model.latent_mode=twostage", "model.head_hidden=64"]).model)


class _InterruptValidation(pl.Callback):
    def on_validation_batch_start(self, trainer, *args) -> None:
        raise KeyboardInterrupt


def test_an_interrupted_validate_saves_no_checkpoint(tiny_config):
    """A trainer.validate (a resume's missed validation) holds the weights only: saving it as last.ckpt would lose
    the optimizers' state and the step count (fitting's Ctrl-C and SIGTERM still save)."""
    cfg = tiny_config(train__max_steps=2, train__val_every_n_steps=2)
    train, val, summary = make_loaders(cfg)
    module = VAEModule(cfg)
    trainer = build_trainer(cfg, Path(cfg.train.run_dir), "test", summary, extra_callbacks=[_InterruptValidation()])
    with pytest.raises(SystemExit):  # Lightning's answer to a KeyboardInterrupt
        trainer.validate(module, val, verbose=False)
    assert not (Path(cfg.train.run_dir) / "checkpoints" / "last.ckpt").exists()


class _FailAtStep(pl.Callback):
    """An error after some steps, as a data folder replaced mid-run raises one."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.steps_done == self.step:
            raise VaedemoError("the data went away.")


def test_an_error_mid_run_leaves_the_last_periodic_checkpoint(tiny_config, tmp_path):
    """Only Ctrl-C and SIGTERM save where the run is: an error may come half-way through a step, from diverged
    weights, from a config --resume would keep, or on one DDP rank while the others wait; the last periodic
    checkpoint is what --resume continues from."""
    cfg = tiny_config(train__max_steps=10, train__checkpoint_every_n_steps=2, train__val_every_n_steps=1000,
                      train__run_dir=str(tmp_path / "run"))  # fmt: skip
    train, val, summary = make_loaders(cfg)
    trainer = build_trainer(cfg, Path(cfg.train.run_dir), "test", summary, extra_callbacks=[_FailAtStep(3)])
    with pytest.raises(VaedemoError, match="the data went away"):
        trainer.fit(VAEModule(cfg), train, val)
    assert _ckpt_step(Path(cfg.train.run_dir) / "checkpoints" / "last.ckpt") == 2


def test_a_hundred_steps_of_gradients_that_are_not_finite_stop_the_run(tiny_config):
    """One skipped step is a glitch the guard absorbs; a hundred in a row is a diverged model or data of NaNs, which
    trained on to the end, unchanged, and exited 0."""
    from vaedemo.training.module import MAX_SKIPPED_IN_A_ROW

    module = VAEModule(tiny_config())
    opt = torch.optim.Adam(module.parameters())

    def nan_step() -> None:
        for p in module.parameters():
            p.grad = torch.full_like(p, float("nan"))
        module.on_before_optimizer_step(opt)

    for _ in range(MAX_SKIPPED_IN_A_ROW - 1):
        nan_step()
    for p in module.parameters():  # a finite step between starts the count again
        p.grad = torch.zeros_like(p)
    module.on_before_optimizer_step(opt)
    for _ in range(MAX_SKIPPED_IN_A_ROW - 1):
        nan_step()
    assert module.skipped_steps == 2 * (MAX_SKIPPED_IN_A_ROW - 1)
    with pytest.raises(VaedemoError, match=f"the last {MAX_SKIPPED_IN_A_ROW} optimiser steps all had gradients that"):
        nan_step()


def test_each_optimiser_counts_its_own_steps_of_gradients_that_are_not_finite(tiny_config):
    """A critic whose gradients are NaN every step while the generator's are finite: one shared count was reset by
    every generator step and never stopped the run."""
    from vaedemo.training.module import MAX_SKIPPED_IN_A_ROW

    module = VAEModule(tiny_config())
    gen, critic = list(module.parameters())[:2], list(module.parameters())[2:4]
    opt_g, opt_d = torch.optim.Adam(gen), torch.optim.Adam(critic)

    def step(params, opt, value: float) -> None:
        for p in params:
            p.grad = torch.full_like(p, value)
        module.on_before_optimizer_step(opt)

    for _ in range(MAX_SKIPPED_IN_A_ROW - 1):
        step(gen, opt_g, 0.0)
        step(critic, opt_d, float("nan"))
    step(gen, opt_g, 0.0)
    with pytest.raises(VaedemoError, match="optimiser steps all had gradients that are not finite"):
        step(critic, opt_d, float("nan"))


@pytest.mark.parametrize("clip", [0.0, 1.0])
def test_gradients_are_clipped_to_train_grad_clip_by_their_global_norm(tiny_config, clip):
    """clip_grads_with_norm_ takes the parameters: given their gradients (whose own .grad is None) it clipped nothing,
    so every run trained unclipped whatever train.grad_clip said."""
    module = VAEModule(tiny_config(train__grad_clip=clip))
    params = [p for p in module.vae.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params)
    for p in params:
        p.grad = torch.ones_like(p)
    before = torch.nn.utils.get_total_norm([p.grad for p in params])
    module.on_before_optimizer_step(opt)
    after = torch.nn.utils.get_total_norm([p.grad for p in params])
    assert float(before) > 10
    assert float(after) == pytest.approx(clip if clip else float(before), rel=1e-4)


def test_a_resume_of_a_run_checkpointed_before_clipping_clipped_says_so(drum_folder, tmp_path, capsys):
    """Until 2026-12-06 train.grad_clip clipped nothing: a run checkpointed then, whose config.yaml says 10, trained
    unclipped, and resumed it was clipped from there on without a word (its weights then differed from the same
    resume before the fix)."""
    from vaedemo.training.module import CLIPPING_KEY

    run_dir = tmp_path / "run"
    common = ["train.checkpoint_every_n_steps=1", "train.val_every_n_steps=1000", "train.vae_steps=1000"]
    assert _train_here(drum_folder, run_dir, *common, "train.max_steps=1") == 0
    last = run_dir / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state[CLIPPING_KEY] is True
    state.pop(CLIPPING_KEY)  # as a checkpoint of a run before the fix
    for extra, warned in [("train.max_steps=2", True), ("train.grad_clip=0", False)]:
        torch.save(state, last)
        capsys.readouterr()
        assert _train_here(drum_folder, run_dir, *common, extra, "train.max_steps=2", resume=True) == 0
        err = capsys.readouterr().err
        assert ("was written before train.grad_clip clipped" in err) == warned, err[-2000:]


def test_a_checkpoint_cut_short_is_one_sentence_on_resume(drum_folder, tmp_path):
    """A last.ckpt cut short (a full disk while it was saved) was a zip reader's traceback."""
    from vaedemo.train import run

    overrides = tiny_overrides(drum_folder, tmp_path / "run", "single", 2)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    load_config(None, overrides).dump_yaml(tmp_path / "run" / "config.yaml")
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(VaedemoError, match=r"last.ckpt is not a readable checkpoint \(RuntimeError\), so the run "
                                           "cannot resume from it; .* to go on from the latest, start a run in another "
                                           rf"train.run_dir with --set train.init_from={tmp_path / 'run' / 'bundle'}."):
        run(None, overrides, resume=True)


def test_a_decay_that_never_starts_is_warned_about():
    from vaedemo.train import decay_never_starts

    assert decay_never_starts(load_config(None, ["train.max_steps=100", "train.lr_decay_start=50"])) is None
    assert decay_never_starts(load_config(None, ["train.max_steps=100"])) is None
    assert decay_never_starts(load_config(None, ["train.max_steps=100", "train.lr_decay_start=98"])) is None
    warning = decay_never_starts(load_config(None, ["train.max_steps=100", "train.lr_decay_start=99"]))
    assert warning.startswith("train.lr_decay_start (99) is at or past the run's last step (99;")  # steps 0-99
    no_decay = ["train.max_steps=100", "train.lr_decay_start=200", "train.lr_final_factor=1.0"]
    assert decay_never_starts(load_config(None, no_decay)) is None  # nothing to decay to anyway


def test_a_posterior_mean_fine_tune_without_a_trained_encoder_is_warned_about():
    """train.decode_posterior_mean without train.init_from trained a decoder over a frozen, untrained encoder,
    silently."""
    from vaedemo.train import untrained_encoder_frozen

    warning = untrained_encoder_frozen(load_config(None, ["train.decode_posterior_mean=true"]))
    assert warning.startswith("train.decode_posterior_mean freezes the encoder") and "train.init_from" in warning
    assert untrained_encoder_frozen(load_config(None, ["train.decode_posterior_mean=true",
                                                       "train.init_from=checkpoints/drums_temporal"])) is None
    assert untrained_encoder_frozen(load_config(None, [])) is None


def test_a_resume_says_what_else_it_changes_and_its_remedy_keeps_the_rate_where_it_stands():
    """The README said --set train.max_steps=N trains longer: with the shipped temporal config (the VAE phase to its
    last step) the new steps trained adversarially, and the decay stretched to the new last step raised the rate at
    the step resumed (2.7x at the end of drums_temporal's 16000 steps)."""
    import re

    from vaedemo.train import resume_warnings

    def temporal(*sets):
        return load_config(ROOT / "configs" / "drums_temporal.yaml", list(sets))

    def rate(cfg, step):
        return lr_factor_at(cfg, step) * cfg.train.lr

    shipped = temporal()
    assert resume_warnings(shipped, shipped, 16000) == []  # (the same settings: a plain resume)
    phase, jump = resume_warnings(shipped, temporal("train.max_steps=20000"), 16000)
    assert "from train.vae_steps (16000) on train with the discriminator" in phase
    assert jump.startswith("the learning rate goes up at step 16000, from 0.0001 to 0.000272")
    # a phase moved under the step resumed: an adversarial run went back to the VAE alone without a word
    warmup = temporal("train.vae_steps=10", "train.discriminator_warmup_len=10")
    (moved,) = resume_warnings(warmup, temporal("train.vae_steps=100", "train.discriminator_warmup_len=10"), 40)
    assert moved == ("the settings put step 40 in the vae phase, where the run would be in the adversarial phase "
                     "(train.vae_steps, train.discriminator_warmup_len): it goes on in that phase from here.")
    two = ["model.latent_mode=twostage", "model.prior_flow_layers=2"]  # stage two has no discriminator: no phase
    (jump,) = resume_warnings(temporal(*two), temporal(*two, "train.max_steps=20000"), 16000)  # warning, one jump
    assert "disc_lr" not in jump
    cases = [  # (the run's settings, where it stopped, the resume's settings)
        (["train.max_steps=16000"], 16000, ["train.max_steps=20000", "train.vae_steps=20000"]),  # at the decay's end
        (["train.max_steps=12000"], 11000, ["train.max_steps=20000", "train.vae_steps=20000"]),  # inside it
        (["train.lr_decay_start=0", "train.lr_final_factor=0.01"], 1000,  # long at its floor, then much longer
         ["train.lr_decay_start=0", "train.lr_final_factor=0.01", "train.max_steps=100000", "train.vae_steps=100000"]),
        (["train.max_steps=16000"], 12000, ["train.lr_decay_start=null"]),  # the decay removed
        (["train.max_steps=16000"], 12000, ["train.lr_decay_start=12000"]),  # moved to the step resumed
        (["train.max_steps=16000"], 14000, ["train.lr=0.01"]),  # another rate
    ]
    for run, stopped_at, resume in cases:
        trained, asked = temporal(*run), temporal(*run, *resume)
        (warning,) = resume_warnings(trained, asked, stopped_at)
        remedy = re.findall(r"--set (\S+)", warning)
        fixed = temporal(*run, *resume, *remedy)
        assert rate(fixed, stopped_at) == pytest.approx(rate(trained, stopped_at), rel=0.01), (resume, remedy)
        assert rate(fixed, stopped_at + 1) <= rate(fixed, stopped_at)  # and from there it does not rise
        assert resume_warnings(trained, fixed, stopped_at) == []


def test_a_longer_resume_warns_before_it_trains(drum_folder, tmp_path, capsys):
    run_dir = tmp_path / "run"
    common = ["train.vae_steps=2", "train.val_every_n_steps=2", "train.checkpoint_every_n_steps=1"]
    assert _train_here(drum_folder, run_dir, "train.max_steps=2", *common) == 0
    capsys.readouterr()
    assert _train_here(drum_folder, run_dir, "train.max_steps=3", *common, resume=True) == 0
    assert "[vaedemo] warning: the run trained the VAE alone, and its steps from train.vae_steps (2) on" in \
        capsys.readouterr().err


def test_a_resume_trains_with_the_betas_and_branch_learning_rates_it_was_given(drum_folder, tmp_path):
    """Lightning restores the optimisers' groups from last.ckpt whole: resumed with other train.betas or
    train.noise_lr_factor, the run trained on with the old ones while its config.yaml and card said the new."""
    run_dir = tmp_path / "run"
    common = ["train.val_every_n_steps=2", "train.checkpoint_every_n_steps=1", "model.noise_bands=4", "model.noise_hop=2"]
    assert _train_here(drum_folder, run_dir, "train.max_steps=2", *common) == 0
    changed = ["train.max_steps=3", "train.betas=[0.8, 0.95]", "train.noise_lr_factor=0.25"]
    assert _train_here(drum_folder, run_dir, *common, *changed, resume=True) == 0
    generator, discriminator = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu",
                                          weights_only=True)["optimizer_states"]  # fmt: skip
    assert [g["lr_scale"] for g in generator["param_groups"]] == [1.0, 0.25]  # the rest, the noise branch
    assert {tuple(g["betas"]) for g in generator["param_groups"] + discriminator["param_groups"]} == {(0.8, 0.95)}


def test_a_checkpoint_the_disk_cannot_hold_is_one_sentence_and_leaves_no_half_file(tmp_path):
    """A full disk while last.ckpt was written: a raw OSError, and a half-written last.ckpt.tmp left on the full disk
    that the resume needed room for (Lightning's own save stands in here: filling a real disk needs a mount)."""
    import errno
    import types

    from vaedemo.errors import VaedemoError
    from vaedemo.training.callbacks import LastCheckpoint

    saver = LastCheckpoint(tmp_path / "run", 1)
    saver.path.parent.mkdir(parents=True)
    saver.path.write_bytes(b"step 4")

    def full_disk(path, weights_only):
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(VaedemoError, match=r"could not be written in .*run/checkpoints \(No space left on device\); "
                                           r"last.ckpt still holds the last step saved: make room, then --resume."):
        saver.save(types.SimpleNamespace(is_global_zero=True, save_checkpoint=full_disk))
    assert saver.path.read_bytes() == b"step 4" and not saver.path.with_suffix(".ckpt.tmp").exists()
