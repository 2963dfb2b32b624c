"""Two-stage models: one vector per clip over a frozen temporal autoencoder, trained by the real CLI on trajectories."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaedemo.bundle import load, save_bundle
from vaedemo.config import load_config
from vaedemo.errors import ConfigError
from vaedemo.inference import Engine
from vaedemo.nn.vae import AudioVAE
from vaedemo.train import run
from vaedemo.training.twostage import FROZEN, TwoStageModule, build_two_stage

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's notes on tiny data loaders


def two_stage_overrides(drum_folder, run_dir, backbone) -> list[str]:
    from conftest import tiny_overrides

    return tiny_overrides(drum_folder, run_dir, "twostage", 2) + [
        f"train.backbone={backbone}", "train.trajectory_copies=2", "train.batch_size=4", "train.max_steps=6",
        "train.vae_steps=6", "train.val_every_n_steps=3", "model.latent_size=6", "model.head_hidden=16",
    ]  # fmt: skip


def test_cli_trains_a_self_contained_bundle_with_the_backbone_frozen(drum_folder, tmp_path, backbone):
    run_dir = run(None, two_stage_overrides(drum_folder, tmp_path / "run", backbone), resume=False)
    bundle = load(run_dir / "bundle")
    assert bundle.config.latent_mode == "twostage" and bundle.meta["step"] == 6
    frozen = {k: v for k, v in load(backbone).model.state_dict().items() if k.startswith(FROZEN)}
    state = bundle.model.state_dict()
    assert frozen and all(torch.equal(state[k], v) for k, v in frozen.items())  # the backbone did not move
    eng = Engine(bundle)
    z = eng.encode(np.random.default_rng(0).standard_normal(5000).astype(np.float32) * 0.1, 16000)
    assert z.shape == (3, 6)  # one vector per clip of 2048 samples
    assert eng.reconstruct(np.zeros(3000, np.float32), 16000).shape == (3000, 1)
    assert eng.sample(3, seed=1).shape == (3, 2048, 1) and eng.interpolate(z[0], z[1], 4).shape == (4, 2048, 1)


@pytest.mark.parametrize("extra", [{"model__encoder": "spectral", "model__encoder_width": 8},
                                   {"model__upsampling": "resize"}])  # fmt: skip
def test_a_backbone_of_another_encoder_or_upsampling_is_the_two_stage_models_own(drum_folder, tmp_path_factory,
                                                                                 tmp_path, extra):  # fmt: skip
    """The backbone's architecture keys include its encoder's kind and its decoder's upsampling: over a spectral or a
    resize backbone, the two-stage model was built with the wave encoder and transposed upsampling, and refused the
    backbone ("lacks encoder.net.0...")."""
    from conftest import tiny_backbone

    source = tiny_backbone(tmp_path_factory, drum_folder, "other", **extra)
    run_dir = run(None, two_stage_overrides(drum_folder, tmp_path / "run", source), resume=False)
    bundle = load(run_dir / "bundle")
    for key, value in extra.items():
        assert getattr(bundle.config, key.removeprefix("model__")) == value
    frozen = {k: v for k, v in load(source).model.state_dict().items() if k.startswith(FROZEN)}
    state = bundle.model.state_dict()
    assert frozen and all(torch.equal(state[k], v) for k, v in frozen.items())


def test_resume_continues_from_the_saved_step(drum_folder, tmp_path, backbone):
    overrides = two_stage_overrides(drum_folder, tmp_path / "run", backbone)
    run(None, overrides + ["train.checkpoint_every_n_steps=3", "train.max_steps=3"], resume=False)
    run_dir = run(None, overrides + ["train.max_steps=5"], resume=True)
    assert load(run_dir / "bundle").meta["step"] == 5


def test_a_resume_goes_on_without_its_backbone_from_its_own_weights(drum_folder, tmp_path, backbone, capsys):
    """A run whose backbone folder had moved could not resume ("is not a bundle folder"), although its last.ckpt holds
    every weight, the frozen stacks' included, and its stored config the backbone's architecture."""
    import shutil

    moved = tmp_path / "backbone"
    shutil.copytree(backbone, moved)
    overrides = two_stage_overrides(drum_folder, tmp_path / "run", moved)
    run(None, overrides + ["train.checkpoint_every_n_steps=3", "train.max_steps=3"], resume=False)
    shutil.rmtree(moved)
    run_dir = run(None, overrides + ["train.max_steps=5"], resume=True)
    err = capsys.readouterr().err
    assert f"note: train.backbone no longer loads (checkpoint {moved} is not a bundle folder" in err
    bundle = load(run_dir / "bundle")
    assert bundle.meta["step"] == 5
    frozen = {k: v for k, v in load(backbone).model.state_dict().items() if k.startswith(FROZEN)}
    state = bundle.model.state_dict()
    assert frozen and all(torch.equal(state[k], v) for k, v in frozen.items())  # the frozen stacks, from last.ckpt


def test_a_resume_encodes_its_trajectories_with_its_own_frozen_encoder(drum_folder, tmp_path, backbone, monkeypatch,
                                                                       capsys):  # fmt: skip
    """Resumed after its backbone's run had rewritten the backbone bundle, stage two encoded its training
    trajectories with the new encoder (Lightning restores the run's own frozen one only afterwards), silently."""
    import shutil

    import vaedemo.training.twostage as twostage

    moved = tmp_path / "backbone"
    shutil.copytree(backbone, moved)
    overrides = two_stage_overrides(drum_folder, tmp_path / "run", moved)
    run(None, overrides + ["train.checkpoint_every_n_steps=3", "train.max_steps=3"], resume=False)
    run(None, overrides + ["train.checkpoint_every_n_steps=1", "train.max_steps=4"], resume=True)
    assert "has changed" not in capsys.readouterr().err  # the backbone as it was: no note (the head trains)
    own = {k: v.clone() for k, v in load(tmp_path / "run" / "bundle").model.state_dict().items()
           if k.startswith("encoder.net.")}  # fmt: skip
    changed = load(moved)
    with torch.no_grad():
        for p in changed.model.encoder.parameters():
            p.add_(0.1)
    save_bundle(changed.model, moved, changed.meta, changed.training)  # its run went on and rewrote it
    seen, real = [], twostage.trajectory_loaders

    def recording(cfg, model):
        seen.append({k: v.clone() for k, v in model.state_dict().items() if k.startswith("encoder.")})
        return real(cfg, model)

    monkeypatch.setattr(twostage, "trajectory_loaders", recording)
    run(None, overrides + ["train.max_steps=5"], resume=True)
    assert all(torch.equal(seen[0][k], v) for k, v in own.items())
    assert "has changed since this run began" in capsys.readouterr().err


def test_a_backbone_that_is_not_temporal_is_refused(drum_folder, tmp_path, tiny_config):
    single = save_bundle(AudioVAE(tiny_config("single").model), tmp_path / "single")
    cfg = load_config(None, two_stage_overrides(drum_folder, tmp_path / "run", single))
    with pytest.raises(ConfigError, match="must be a temporal bundle without a posterior flow"):
        build_two_stage(cfg)
    cfg.train.backbone = None
    with pytest.raises(ConfigError, match="needs train.backbone"):
        build_two_stage(cfg)
    causal = save_bundle(AudioVAE(tiny_config("temporal", flows=0, model__causal=True).model), tmp_path / "causal")
    cfg = load_config(None, two_stage_overrides(drum_folder, tmp_path / "run", causal))
    with pytest.raises(ConfigError, match=r"train.backbone .* is causal; a two-stage model needs a centred backbone"):
        build_two_stage(cfg)


def test_the_decoder_loss_reaches_the_heads_and_a_fine_tune_starts_from_a_bundle(drum_folder, tmp_path, backbone):
    """mel_sizes on a two-stage run: a log-mel loss through the frozen decoder (its gradient reaches the heads, the
    backbone stays frozen); train.init_from starts stage two from an earlier two-stage bundle."""
    from vaedemo.training.twostage import TwoStageModule

    first = load(run(None, two_stage_overrides(drum_folder, tmp_path / "a", backbone), resume=False) / "bundle")
    overrides = two_stage_overrides(drum_folder, tmp_path / "b", backbone) + [
        "train.mel_sizes=[256, 128]", "train.mel_weight=10", "train.decoder_loss_clips=2"]
    cfg = load_config(None, overrides)
    model, cfg.model = build_two_stage(cfg)
    module = TwoStageModule(cfg, model)
    stats = torch.randn(4, 2 * cfg.model.trajectory_size, cfg.model.clip_length // cfg.model.hop)
    z, _ = model.latent.kl(model.encoder.head(stats))
    loss = module.decoder_loss(z, stats)
    loss.backward()
    assert loss.item() > 0 and torch.isfinite(loss)
    heads = [p for n, p in model.named_parameters() if n.startswith("decoder.head.")]
    assert heads and all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads)
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith(FROZEN))
    from vaedemo.train import _module_and_data

    fine_tune = load_config(None, overrides + [f"train.init_from={first.path}"])
    start = _module_and_data(fine_tune)[0].vae.state_dict()  # before any step: the first bundle's weights
    assert all(torch.equal(start[k], v) for k, v in first.model.state_dict().items())
    assert run(None, overrides + [f"train.init_from={first.path}"], resume=False)  # and the CLI trains from there


def test_an_audio_target_compares_the_decoded_vector_with_the_clips_themselves(drum_folder, tmp_path, backbone):
    """train.decoder_loss_target: audio: the training batches carry the clips each trajectory encodes (as the encoder
    saw them), and the decoder loss compares the decoded vector's audio with those clips, not with the audio of the
    clip's own trajectory; the CLI trains with it."""
    from vaedemo.training.twostage import TwoStageModule, encode_statistics, trajectory_loaders

    overrides = two_stage_overrides(drum_folder, tmp_path / "run", backbone) + [
        "train.mel_sizes=[256, 128]", "train.mel_weight=10", "train.decoder_loss_clips=2",
        "train.decoder_loss_target=audio"]  # fmt: skip
    cfg = load_config(None, overrides)
    model, cfg.model = build_two_stage(cfg)
    model.eval()
    train, _, _, _, _ = trajectory_loaders(cfg, model)
    stats, clips = next(iter(train))
    assert clips.shape == (stats.shape[0], cfg.model.channels, cfg.model.clip_length)
    with torch.no_grad():
        again = encode_statistics(model, list(clips), copies=1)
    torch.testing.assert_close(again, stats, rtol=1e-4, atol=1e-5)  # each clip is the one its statistics encode
    module = TwoStageModule(cfg, model)
    z = model.latent.posterior_mean(model.encoder.head(stats))
    with torch.no_grad():
        decoded = module.audio(model.decoder.head(z))
    assert module.decoder_loss(z, stats, decoded).item() < 1e-5  # compared with the clips given: here, itself
    assert module.decoder_loss(z, stats, clips).item() != pytest.approx(module.decoder_loss(z, stats).item())
    assert load(run(None, overrides, resume=False) / "bundle").meta["step"] == 6
    with pytest.raises(ConfigError, match="decoder_loss_target"):
        load_config(None, overrides + ["train.decoder_loss_target=clips"])


def test_the_trajectory_term_enters_the_objective_with_its_weight(drum_folder, tmp_path, backbone):
    """train.trajectory_weight scales the trajectory term alone: at 0 the objective is the KL and the audio loss, and
    the trajectory anchor's gradient is gone; a negative weight is refused."""
    from vaedemo.training.twostage import TwoStageModule, trajectory_loaders

    overrides = two_stage_overrides(drum_folder, tmp_path / "run", backbone) + [
        "train.mel_sizes=[256, 128]", "train.mel_weight=10", "train.decoder_loss_clips=2",
        "train.decoder_loss_target=audio"]  # fmt: skip
    losses = {}
    for weight in (1.0, 0.0, 0.25):
        cfg = load_config(None, overrides + [f"train.trajectory_weight={weight}"])
        torch.manual_seed(0)
        model, cfg.model = build_two_stage(cfg)
        model.eval()  # no dropout: the three objectives see the same network
        stats, clips = next(iter(trajectory_loaders(cfg, model)[0]))
        loss, logs = TwoStageModule(cfg, model).objective(stats, clips, step=2000)
        losses[weight] = (loss.item(), logs["train/trajectory_nll"].item())
    (full, nll), (none, nll0), (quarter, _) = losses[1.0], losses[0.0], losses[0.25]
    assert nll == pytest.approx(nll0) and nll > 0  # the same batch and network each time
    assert none == pytest.approx(full - nll, rel=1e-4) and quarter == pytest.approx(full - 0.75 * nll, rel=1e-4)
    with pytest.raises(ConfigError, match="trajectory_weight must not be negative"):
        load_config(None, overrides + ["train.trajectory_weight=-1"])


def test_a_frozen_decoding_side_decodes_in_evaluation_mode_while_the_encoder_head_trains(drum_folder, tmp_path, backbone):
    """With train.freeze_decoder the decoding side stays in evaluation mode through Lightning's train() calls: its
    decoder head's dropout would otherwise decode each vector differently from reconstruction (the encoder head
    learned vectors for a noisy decoder). Without it, both heads train with their dropout."""
    from vaedemo.training.twostage import TwoStageModule

    overrides = two_stage_overrides(drum_folder, tmp_path / "run", backbone) + [
        "train.mel_sizes=[256, 128]", "train.decoder_loss_target=audio", "model.head_dropout=0.5"]  # fmt: skip
    for frozen in (True, False):
        cfg = load_config(None, overrides + [f"train.freeze_decoder={str(frozen).lower()}"])
        model, cfg.model = build_two_stage(cfg)
        module = TwoStageModule(cfg, model).train()
        assert module.training and model.encoder.head.training
        assert model.decoder.head.training != frozen and model.decoder.training != frozen
        z = torch.randn(4, cfg.model.latent_size)
        assert torch.equal(model.decoder.head(z), model.decoder.head(z)) == frozen  # dropout, or none
        assert not module.eval().vae.decoder.training  # and evaluation mode is evaluation mode


def test_a_fine_tune_over_a_retrained_backbone_keeps_that_backbone(drum_folder, tmp_path, backbone):
    """train.init_from a two-stage bundle trained over one backbone, train.backbone another (e.g. its decoder
    fine-tuned adversarially with the encoder frozen): the heads and latent come from the bundle, the conv stacks
    from the new backbone."""
    from vaedemo.train import _module_and_data

    first = load(run(None, two_stage_overrides(drum_folder, tmp_path / "a", backbone), resume=False) / "bundle")
    retrained = load(backbone)
    with torch.no_grad():
        for name, p in retrained.model.named_parameters():
            if name.startswith("decoder.net."):
                p.add_(0.05 * torch.randn_like(p))
    other = save_bundle(retrained.model, tmp_path / "retrained", {"name": "retrained decoder"}, retrained.training)
    overrides = two_stage_overrides(drum_folder, tmp_path / "b", other) + [f"train.init_from={first.path}"]
    start = _module_and_data(load_config(None, overrides))[0].vae.state_dict()
    new_stacks = {k: v for k, v in retrained.model.state_dict().items() if k.startswith(FROZEN)}
    assert any(not torch.equal(first.model.state_dict()[k], v) for k, v in new_stacks.items())
    assert all(torch.equal(start[k], v) for k, v in new_stacks.items())
    heads = {k: v for k, v in first.model.state_dict().items() if not k.startswith(FROZEN)}
    assert heads and all(torch.equal(start[k], v) for k, v in heads.items())


def test_the_decoder_loss_adds_the_weighted_frame_buzz_of_the_decoded_audio(drum_folder, tmp_path, backbone):
    """train.frame_buzz_weight reaches stage two's decoder loss (where its decoder learns); without a decoder loss
    (train.mel_sizes) it would train nothing, and against a trajectory's audio (the decoder's own, comb and all)
    nothing that lowers the comb: refused."""
    overrides = two_stage_overrides(drum_folder, tmp_path / "run", backbone) + [
        "train.mel_sizes=[256, 128]", "train.decoder_loss_clips=2", "train.frame_buzz_weight=0.5",
        "train.decoder_loss_target=audio"]
    model, _ = build_two_stage(load_config(None, overrides))
    module = TwoStageModule(load_config(None, overrides), model).eval()
    torch.manual_seed(0)
    z, clips = torch.randn(2, model.cfg.latent_size), torch.randn(2, 1, model.cfg.clip_length) * 0.1
    stats = torch.randn(2, 2 * model.cfg.trajectory_size, model.cfg.clip_length // model.cfg.hop)
    with torch.no_grad():
        with_buzz = module.decoder_loss(z, stats, clips)
        audio = sum(module.audio_parts(model.decoder.head(z)))
        term = module.frame_buzz(clips, audio).item()
        module.frame_buzz = None
        without = module.decoder_loss(z, stats, clips)
    assert term > 0 and (with_buzz - without).item() == pytest.approx(0.5 * term, rel=1e-4)
    message = "frame_buzz_weight on a twostage model needs train.mel_sizes and train.decoder_loss_target audio"
    with pytest.raises(ConfigError, match=message):
        load_config(None, two_stage_overrides(drum_folder, tmp_path / "b", backbone) + ["train.frame_buzz_weight=1"])
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides + ["train.decoder_loss_target=trajectory"])


def test_a_fine_tuned_decoder_learns_from_the_clips_and_the_encoder_stays(drum_folder, tmp_path, backbone):
    """train.finetune_decoder: the audio loss against the clips (log-mel + train.decoder_stft_weight x STFT) trains
    the backbone's decoder too (stage two's bundle carries its own decoder); the encoder, whose trajectories stage two
    learns from, does not move. Without an audio target there is nothing for the decoder to learn from: refused."""
    overrides = two_stage_overrides(drum_folder, tmp_path / "run", backbone) + [
        "train.mel_sizes=[256, 128]", "train.mel_weight=10", "train.decoder_loss_clips=2",
        "train.decoder_loss_target=audio", "train.finetune_decoder=true", "train.decoder_stft_weight=0.2",
        "train.lr=0.01"]  # fmt: skip
    trained = load(run(None, overrides, resume=False) / "bundle").model.state_dict()
    before = load(backbone).model.state_dict()
    encoder = [k for k in before if k.startswith("encoder.net.")]
    decoder = [k for k in before if k.startswith("decoder.net.")]
    assert encoder and all(torch.equal(trained[k], before[k]) for k in encoder)
    assert decoder and any(not torch.equal(trained[k], before[k]) for k in decoder)
    with pytest.raises(ConfigError, match="finetune_decoder needs"):
        load_config(None, overrides + ["train.decoder_loss_target=trajectory"])


def test_an_encoder_head_fine_tune_keeps_the_decoding_side_of_its_init(drum_folder, tmp_path, backbone):
    """train.freeze_decoder on a two-stage model: started from a two-stage bundle whose decoder was fine-tuned, only
    the encoder head and the flows learn (from the audio loss on the posterior means); the decoder head and that
    bundle's own decoder (not train.backbone's) stay as they were, the backbone's encoder as ever."""
    decoding = two_stage_overrides(drum_folder, tmp_path / "a", backbone) + [
        "train.mel_sizes=[256, 128]", "train.mel_weight=10", "train.decoder_loss_clips=2",
        "train.decoder_loss_target=audio", "train.lr=0.01"]  # fmt: skip
    first = load(run(None, decoding + ["train.finetune_decoder=true"], resume=False) / "bundle")
    overrides = [o.replace(str(tmp_path / "a"), str(tmp_path / "b")) for o in decoding]
    overrides += ["train.freeze_decoder=true", f"train.init_from={first.path}"]
    trained = load(run(None, overrides, resume=False) / "bundle").model.state_dict()
    before = first.model.state_dict()
    decoding_side = [k for k in before if k.startswith("decoder.")]
    assert any(k.startswith("decoder.net.") for k in decoding_side)
    assert all(torch.equal(trained[k], before[k]) for k in decoding_side)
    backbone_state = load(backbone).model.state_dict()  # the init's decoder was its own, not the backbone's
    assert any(not torch.equal(before[k], backbone_state[k]) for k in decoding_side if k.startswith("decoder.net."))
    encoder_head = [k for k in before if k.startswith("encoder.head.")]
    assert encoder_head and any(not torch.equal(trained[k], before[k]) for k in encoder_head)
    assert all(torch.equal(trained[k], before[k]) for k in before if k.startswith("encoder.net."))
    with pytest.raises(ConfigError, match="freeze_decoder on a twostage"):
        load_config(None, overrides + ["train.finetune_decoder=true"])
    # train.freeze_prior: what the model generates (the prior flow, beside the decoding side) stays as it was
    overrides = [o.replace(str(tmp_path / "b"), str(tmp_path / "c")) for o in overrides] + ["train.freeze_prior=true"]
    again = load(run(None, overrides, resume=False) / "bundle").model.state_dict()
    prior = [k for k in before if k.startswith("latent.prior_flow.")]
    posterior = [k for k in before if k.startswith("latent.posterior_flow.") and before[k].is_floating_point()]
    assert prior and all(torch.equal(again[k], before[k]) for k in prior + decoding_side)
    assert any(not torch.equal(again[k], before[k]) for k in posterior + encoder_head)
    with pytest.raises(ConfigError, match="freeze_prior needs train.freeze_decoder"):
        load_config(None, decoding + ["train.freeze_prior=true"])


@pytest.fixture(scope="module")
def noise_backbone(tmp_path_factory, drum_folder):
    """A tiny temporal bundle with a relative noise branch."""
    from conftest import tiny_backbone

    noise = {"model__noise_bands": 2, "model__noise_hop": 4, "model__noise_relative": "true"}
    return tiny_backbone(tmp_path_factory, drum_folder, "tiny noise", seed=1, **noise)


def test_the_decoder_loss_sees_relative_noise_beside_the_stack_as_an_incoherent_sum(drum_folder, tmp_path, noise_backbone):
    from vaedemo.training.twostage import TwoStageModule

    overrides = two_stage_overrides(drum_folder, tmp_path / "run", noise_backbone) + [
        "train.mel_sizes=[256, 128]", "train.decoder_loss_target=audio", "train.finetune_decoder=true"]  # fmt: skip
    cfg = load_config(None, overrides)
    model, model_cfg = build_two_stage(cfg)
    assert model_cfg.noise_bands == 2 and model_cfg.noise_relative  # the backbone's architecture, noise included
    model.eval()  # the noise's fixed evaluation seed: the same draw in every call
    trajectory = torch.randn(2, model_cfg.trajectory_size, 8)
    parts = TwoStageModule(cfg, model).audio_parts(trajectory)
    whole = TwoStageModule(cfg, model).audio(trajectory)
    assert len(parts) == 2 and float(parts[1].abs().max()) > 0  # the conv stack's and the noise's
    torch.testing.assert_close(sum(parts), whole, rtol=1e-5, atol=1e-6)
    cfg.train.incoherent_partials = False
    (alone,) = TwoStageModule(cfg, model).audio_parts(trajectory)
    torch.testing.assert_close(alone, whole, rtol=1e-5, atol=1e-6)


def test_a_decoding_side_fine_tune_keeps_every_vector_and_the_prior(drum_folder, tmp_path, noise_backbone):
    """train.freeze_encoder with train.freeze_prior on a two-stage model: the encoder head, the posterior flow and
    the prior flow stay as the init has them (every clip's vector and every prior draw stay), while the decoder head,
    the decoder and its relative noise branch learn from the audio loss."""
    decoding = two_stage_overrides(drum_folder, tmp_path / "a", noise_backbone) + [
        "train.mel_sizes=[256, 128]", "train.mel_weight=10", "train.decoder_loss_clips=2",
        "train.decoder_loss_target=audio", "train.finetune_decoder=true", "train.lr=0.01"]  # fmt: skip
    first = load(run(None, decoding, resume=False) / "bundle")
    overrides = [o.replace(str(tmp_path / "a"), str(tmp_path / "b")) for o in decoding]
    overrides += ["train.freeze_encoder=true", "train.freeze_prior=true", f"train.init_from={first.path}"]
    trained = load(run(None, overrides, resume=False) / "bundle").model.state_dict()
    before = first.model.state_dict()
    kept = [k for k in before if k.startswith(("encoder.", "latent.")) and before[k].is_floating_point()]
    assert any(k.startswith("latent.prior_flow.") for k in kept) and all(torch.equal(trained[k], before[k]) for k in kept)
    for prefix in ("decoder.head.", "decoder.net.", "decoder.noise."):
        assert any(not torch.equal(trained[k], before[k]) for k in before if k.startswith(prefix)), prefix
    with pytest.raises(ConfigError, match="freeze_prior needs"):
        load_config(None, decoding + ["train.freeze_prior=true"])


def test_a_frozen_side_trains_in_evaluation_mode_so_each_clip_keeps_the_vector_inference_gives(drum_folder, tmp_path,
                                                                                                  backbone):  # fmt: skip
    """train.freeze_encoder (the encoding side frozen): Lightning's train() left the encoder head's dropout on, so the
    decoding side learned from vectors that inference never encodes; train.freeze_decoder: the decoding side's."""
    overrides = two_stage_overrides(drum_folder, tmp_path / "run", backbone) + [
        "model.head_dropout=0.5", "train.mel_sizes=[256, 128]", "train.decoder_loss_target=audio"]  # fmt: skip
    for frozen, still, learning in (("freeze_decoder", "decoder", "encoder"), ("freeze_encoder", "encoder", "decoder")):
        cfg = load_config(None, overrides + [f"train.{frozen}=true"])
        module = TwoStageModule(cfg, build_two_stage(cfg)[0]).train()
        assert not getattr(module.vae, still).training and getattr(module.vae, learning).training
    vae = module.vae  # the encoding side frozen: each clip's posterior statistics the same in every step
    stats = torch.randn(4, 2 * vae.cfg.trajectory_size, vae.mode.frames_per_clip)
    assert torch.equal(vae.encoder.head(stats), vae.encoder.head(stats))


def test_a_decoder_of_its_own_may_add_relative_noise_that_the_backbone_lacks(drum_folder, tmp_path, backbone):
    """A two-stage config that fine-tunes its decoder may give it a branch the backbone lacks (its keys then come from
    the config, its weights start fresh and get the audio loss's gradient); a frozen backbone decoder cannot."""
    from vaedemo.training.twostage import TwoStageModule, encode_statistics

    noise = ["model.noise_bands=2", "model.noise_hop=4", "model.noise_relative=true", "train.mel_sizes=[256, 128]"]
    overrides = two_stage_overrides(drum_folder, tmp_path / "run", backbone) + noise + [
        "train.decoder_loss_clips=2", "train.decoder_loss_target=audio"]  # fmt: skip
    with pytest.raises(ConfigError, match="adds a decoder branch that train.backbone lacks"):
        build_two_stage(load_config(None, overrides))
    cfg = load_config(None, overrides + ["train.finetune_decoder=true"])
    model, model_cfg = build_two_stage(cfg)
    assert (model_cfg.noise_bands, model_cfg.noise_hop, model_cfg.noise_relative) == (2, 4, True)
    torch.manual_seed(0)
    stats, clips = encode_statistics(model, 0.1 * torch.randn(4, 1, 2048), copies=1, keep_clips=True)
    module = TwoStageModule(cfg, model)
    module.set_spread(stats)
    module.objective(stats, clips, step=0)[0].backward()
    grads = [p.grad for n, p in model.named_parameters() if n.startswith("decoder.noise.")]
    assert grads and all(g is not None and float(g.abs().sum()) > 0 for g in grads)
    bundle = load(run(None, overrides + ["train.finetune_decoder=true"], resume=False) / "bundle")
    assert bundle.config.noise_bands == 2 and any(k.startswith("decoder.noise.") for k in bundle.model.state_dict())
    assert Engine(bundle).reconstruct(np.zeros(3000, np.float32), 16000).shape == (3000, 1)


def test_trajectory_statistics_are_filled_in_order_and_refused_when_they_would_not_fit(drum_folder, tmp_path, backbone,
                                                                                        monkeypatch):  # fmt: skip
    """encode_statistics allocates its outputs whole (copy c of clip i at c * N + i, across batch boundaries) and says
    in one sentence when they would not fit in the memory free, before encoding the folder for an hour."""
    from vaedemo.training import twostage
    from vaedemo.training.twostage import encode_statistics

    model, _ = build_two_stage(load_config(None, two_stage_overrides(drum_folder, tmp_path / "run", backbone)))
    model.eval()
    torch.manual_seed(0)
    clips = 0.1 * torch.randn(5, 1, 2048)
    one = torch.cat([encode_statistics(model, clips[i : i + 1], copies=1) for i in range(5)])
    stats, kept = encode_statistics(model, clips, copies=3, batch=2, keep_clips=True)
    torch.testing.assert_close(stats, one.repeat(3, 1, 1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(kept, model.normalised(clips)[0].repeat(3, 1, 1))
    need = 4 * (stats.numel() + kept.numel())
    assert twostage.available_memory() > need  # this machine's MemAvailable, read
    monkeypatch.setattr(twostage, "available_memory", lambda: int(need / 0.75) - 4)
    with pytest.raises(ConfigError, match=r"^two-stage training keeps 3 encodings of each of 5 clips in memory, 0\.0 GiB, "
                                          r"and this machine has 0\.0 GiB free: lower train.trajectory_copies or "
                                          r"data.max_files\.$"):  # fmt: skip
        encode_statistics(model, clips, copies=3, keep_clips=True)
    monkeypatch.setattr(twostage, "available_memory", lambda: int(need / 0.75) + 4)
    assert encode_statistics(model, clips, copies=3, keep_clips=True)[0].shape == stats.shape


def test_stage_two_clips_its_gradients_and_skips_a_step_that_is_not_finite(drum_folder, tmp_path, backbone):
    """Stage two had neither: train.grad_clip did nothing there, and a NaN step went into Adam's moments."""
    cfg = load_config(None, two_stage_overrides(drum_folder, tmp_path / "run", backbone) + ["train.grad_clip=1"])
    model, cfg.model = build_two_stage(cfg)
    module = TwoStageModule(cfg, model)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params)
    for p in params:
        p.grad = torch.ones_like(p)
    module.on_before_optimizer_step(opt)
    assert float(torch.nn.utils.get_total_norm([p.grad for p in params])) == pytest.approx(1.0, rel=1e-4)
    params[0].grad = torch.full_like(params[0], float("nan"))
    module.on_before_optimizer_step(opt)
    assert all(p.grad is None for p in params) and module.skipped_steps == 1
