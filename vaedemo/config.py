"""Typed configuration: dataclasses with defaults, YAML load/dump, dotted overrides and validation.

A config is data. :class:`ModelConfig` holds everything a model needs (audio format, architecture, latent mode) and
nothing else: a bundle stores it alone, so a model is rebuilt from it and no training key can break loading.
:class:`Config` wraps it with the data, training and trainer sections of an experiment. Renamed keys are still read,
with a warning naming the new key (:data:`RENAMED_KEYS`). Validation errors are :class:`ConfigError` with one
sentence naming the key and the file.

>>> cfg = load_config(None, overrides=["model.latent_size=32"])
>>> cfg.model.latent_size
32
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .cli import write_outputs
from .errors import ConfigError
from .typed import build_dataclass, merge_dicts, shown
from .yamlfile import DuplicateKeyError, loads, read_yaml

LATENT_MODES = ("temporal", "single", "twostage")
UPSAMPLINGS = ("transposed", "resize")  # model.upsampling
ENCODERS = ("wave", "spectral")  # model.encoder
DATA_MODES = ("oneshot", "crops")
DISCRIMINATOR_PRECISIONS = ("float32", "bfloat16", "auto")  # train.discriminator_precision
# Lightning's precisions that train this model: "16-true" / "bf16-true" cast its weights to half while the batches
# stay float32 (the first convolution fails on the mismatch)
TRAINER_PRECISIONS = ("32-true", "32", "64-true", "64", "bf16-mixed", "bf16", "16-mixed", "16")


@dataclass
class AugmentConfig:
    """Random changes to each training clip (never to validation clips); all off by default."""

    gain_db: float = 0.0  # gain drawn uniformly in [-gain_db, +gain_db] dB
    rate: float = 0.0  # playback-rate factor drawn log-uniformly in [1 / (1 + rate), 1 + rate]: pitch and length
    mix: float = 0.0  # probability of layering a second random training clip at a random offset (-12..0 dB)
    eq_db: float = 0.0  # random low shelf, peak and high shelf, each of gain in [-eq_db, +eq_db] dB (see data.eq)
    band_limit: float = 0.0  # probability that a clip goes through a lower sample rate and back (see data.eq)


@dataclass
class DataConfig:
    """Where the audio comes from and how it is cut into training examples."""

    root: str = "data/drums"  # folder of audio files (searched recursively), decoded at the model's rate and channels
    mode: str = "oneshot"  # oneshot: each file gives one clip (model.clip_length) from its start; crops: random crops
    val_fraction: float = 0.1
    split_seed: int = 0  # the train/val split is a hash of (seed, relative path): stable across runs and machines
    cache_dir: str | None = None  # decoded cache; default <root>/.vaedemo_cache
    max_files: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class DiscriminatorConfig:
    """Multi-scale waveform + multi-period (+ optional multi-resolution STFT) discriminator."""

    capacity: int = 16
    scales: int = 3  # number of waveform scales (0 = none)
    periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])
    stft_sizes: list[int] = field(default_factory=list)  # e.g. [2048, 1024, 512]; empty = no STFT discriminator


@dataclass
class ModelConfig:
    """Everything an AudioVAE needs: audio format, PQMF bands, conv encoder/decoder, latent mode and flows."""

    sample_rate: int = 44100
    channels: int = 1  # 1 = mono, 2 = stereo
    clip_length: int = 44032  # samples per clip (a multiple of the hop): one latent vector's span in single mode,
    # the training example length and the default length of a prior sample in temporal mode
    bands: int = 16  # PQMF bands, a power of two (1 = no PQMF)
    capacity: int = 32  # channels of the first conv; doubled at each stride
    ratios: list[int] = field(default_factory=lambda: [4, 4, 2])
    dilations: list[int] = field(default_factory=lambda: [1, 3, 9])
    kernel_size: int = 3
    causal: bool = False
    latent_size: int = 16
    # temporal: latent frames at sr / hop; single: one vector per fixed-length clip, learned end to end from audio;
    # twostage: one vector per clip that encodes the latent trajectory of a frozen temporal autoencoder
    latent_mode: str = "temporal"
    single_channels: int = 8  # single mode: conv channels flattened into the fully connected head
    # twostage mode: one vector per clip on top of a frozen temporal autoencoder whose latent trajectory has
    # trajectory_size dims per frame; MLP heads of head_hidden units map the whole trajectory to the vector and back
    trajectory_size: int = 16
    head_hidden: int = 512
    head_dropout: float = 0.0  # dropout between the heads' layers while training (stage two overfits 456 clips)
    # twostage mode: clips are normalised to one peak before the backbone and their level becomes one more latent
    # coordinate (latent_size learned dims + 1), with the training clips' level distribution as its prior
    level_latent: bool = False
    posterior_flow_layers: int = 0  # RealNVP couplings after the Gaussian posterior (0 = plain Gaussian)
    prior_flow_layers: int = 0  # RealNVP couplings of the learned prior (0 = standard normal)
    flow_hidden: int = 256
    flow_scale_bound: float = 2.0  # |log-scale| of each coupling stays below this
    pqmf_attenuation: float = 100.0  # dB, prototype filter stop-band attenuation
    # RAVE's noise branch (hi-hats, snares, cymbals): uniform noise filtered by an FIR of noise_bands magnitudes per
    # band, predicted every noise_hop band-rate samples (a divisor of prod(ratios)), added to the output bands; 0 = off
    noise_bands: int = 0
    noise_hop: int = 8
    # the noise's level relative to the conv stack's band (its rms over the last frame, no gradient through it), and
    # the noise compared with the input beside the stack as an incoherent sum (train.incoherent_partials), as the
    # partial bank is: under log-magnitude losses a branch added at an unrelated phase gets no pull up where it is the
    # quieter part, and silent tails pull it down everywhere (docs/twostage.md); false: RAVE's absolute noise
    noise_relative: bool = False
    # the decoder's upsampling: transposed (RAVE's transposed convs) or resize (nearest-neighbour x r, then a conv):
    # a transposed conv's kernel phases make a constant latent decode to a frame-periodic buzz (see nn/blocks.py)
    upsampling: str = "transposed"
    # fixed-pitch sinusoids per PQMF band with running phase, amplitudes predicted per frame from the trajectory,
    # relative to the band's level (vaedemo.nn.partials): partials off the frame rate's harmonics; 0 = off
    partials: int = 0
    # the encoder's stack: wave (RAVE's strided convs over the PQMF bands' waveforms) or spectral (log-mel spectra and
    # energies of the audio per latent frame, no phase, then encoder_width channels of convs at the frame rate: it
    # generalised further to unseen drums from one soundfont's one-shots, docs/twostage.md)
    encoder: str = "wave"
    encoder_width: int = 256

    @property
    def hop(self) -> int:
        """Samples per latent frame: PQMF bands times the product of the strides."""
        return self.bands * math.prod(self.ratios)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainerConfig:
    """Passed to ``lightning.Trainer``: hardware and distribution."""

    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"  # "ddp" for several devices or nodes
    precision: str = "32-true"


@dataclass
class TrainConfig:
    """Optimisation, the three phases, the discriminator, losses and logging."""

    run_dir: str = "runs/default"
    seed: int = 0
    batch_size: int = 8
    num_workers: int = 0
    max_steps: int = 1000
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.5, 0.9])
    disc_lr: float = 1e-4
    # learning rates stay constant until lr_decay_start, then fall log-linearly to lr_final_factor x at max_steps
    lr_decay_start: int | None = None
    lr_final_factor: float = 0.1
    # the noise branch's learning rate as a multiple of lr, for a branch added to a trained decoder (train.init_from),
    # which starts near silent as RAVE's does (under the spectral losses alone it stayed silent at any rate tried:
    # docs/twostage.md, pitched hits)
    noise_lr_factor: float = 1.0
    # the partial bank's learning rate as a multiple of lr, for a bank added to a trained decoder (train.init_from):
    # it learns from nothing which sinusoids to play while the decoder around it only adjusts (30 in docs/twostage.md)
    partials_lr_factor: float = 1.0
    # the spectral losses see a partial bank (and a relative noise branch) and the conv stack as an incoherent sum (the
    # square root of their summed squared magnitudes): on the true sum, a sinusoid quieter than the stack's output at
    # its pitch gets no pull whatever it would add (vaedemo.nn.losses.IncoherentSpectra); false: the true sum
    incoherent_partials: bool = True
    # phases, counted in training batches: VAE only -> discriminator warm-up -> adversarial
    vae_steps: int = 1000  # length of the VAE phase (reconstruction + KL only)
    discriminator_warmup_len: int = 0
    # freeze encoder and posterior in the adversarial phase (as RAVE does); on a twostage model, its encoder head and
    # posterior flow in every step: each clip keeps its vector while the decoding side learns
    freeze_encoder: bool = False
    # float32, bfloat16, or auto (bfloat16 where the device runs it natively: a CPU with AMX or AVX512_BF16, a CUDA
    # GPU from Ampere on; float32 elsewhere). In bfloat16 the discriminator's forward and backward run under autocast
    # whatever trainer.precision (its weights, every loss and the generator stay float32): its dense convolutions are
    # most of an adversarial step, and bfloat16 runs them several times faster on such devices.
    discriminator_precision: str = "float32"
    # a decoder fine-tune for inference: encoder and posterior frozen in every phase, and the decoder learns from the
    # posterior means (what reconstruction and a two-stage model decode) instead of noisy posterior samples
    decode_posterior_mean: bool = False
    # its counterpart, an encoder fine-tune for inference: the decoder (conv stack and noise branch) frozen, and the
    # encoder learns to give the posterior means that decoder renders best (reconstruction decodes the means; the KL at
    # beta keeps the posterior regular). Where a decoder's best latents lie far from the encoder's, the encoder is the
    # limit: this moves the latent space, so a two-stage model over the backbone needs its stage two retrained. On a
    # twostage model: its decoder head and decoder frozen, the encoder head (and the flows) learn from the decoder loss
    # on the audio of the posterior mean (train.decoder_loss_target audio), the backbone's encoder frozen as ever
    freeze_decoder: bool = False
    # with it, a new encoder stack over train.init_from's decoder (another model.encoder) first learns for this many
    # steps to give the posterior statistics of that bundle's own encoder (mean squared error, no decoding: cheap),
    # so that it starts inside the latent space the decoder knows, then from the decoded audio as above
    encoder_distill_steps: int = 0
    # with it, on a twostage model: the prior flow frozen too, so that the fine-tune changes how sounds are encoded and
    # not what the model generates (prior samples stay as they were; the KL pulls the encoder toward that prior); with
    # train.freeze_encoder instead, the prior's draws stay the vectors they were while the decoding side learns
    freeze_prior: bool = False
    # KL weight, ramped (log-linear) from beta_start to beta over beta_warmup_steps
    beta: float = 0.01
    beta_start: float = 1e-6
    beta_warmup_steps: int = 1000
    stft_sizes: list[int] = field(default_factory=lambda: [2048, 1024, 512, 256, 128])
    multiband_loss: bool = True
    band_stft_sizes: list[int] = field(default_factory=lambda: [256, 128, 64, 32, 16])
    mel_sizes: list[int] = field(default_factory=list)  # multi-scale log-mel L1 (e.g. [2048, 1024, 512]); empty = off
    mel_bands: int = 80  # mel filters per size (halved for small sizes until every filter holds a bin)
    mel_weight: float = 1.0
    # the floor inside the spectral losses' logs, in dB below each target spectrogram's loudest cell (null: the fixed
    # 1e-7 / 1e-5, ~100 dB below a loud clip's peak, so that its inaudible tail weighs as much as the hit)
    loss_floor_db: float | None = None
    # weight of the frame-buzz loss (nn/losses.py FrameBuzz: the dB by which the estimate's comb at the frame rate's
    # harmonics differs from the target's, either way); 0 = off
    frame_buzz_weight: float = 0.0
    adversarial_weight: float = 1.0
    feature_matching_weight: float = 10.0
    grad_clip: float | None = 10.0
    val_every_n_steps: int = 500
    val_batches: int = 4
    checkpoint_every_n_steps: int = 100
    log_audio_every_n_val: int = 1  # audio, spectrograms and prior samples to TensorBoard every n validations; 0: never
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    # twostage models: the temporal bundle (folder or hf:// id) whose conv stacks are frozen, and how many augmented
    # encodings of each training clip stage two learns from
    backbone: str | None = None
    trajectory_copies: int = 8
    # twostage models with mel_sizes: the mel loss compares, through the frozen decoder, the audio of the decoded vector
    # with that of the clip's own trajectory, on this many clips of each batch (the decoder is the costly part)
    decoder_loss_clips: int = 8
    # twostage models: weight of the trajectory term (the vector's decoded trajectory against the backbone encoder's).
    # It anchors stage two to the backbone's own encoding; 0 with train.freeze_decoder leaves the encoder head the
    # audio loss (and the KL) alone, free to find vectors that decode closer than the backbone's trajectory does
    trajectory_weight: float = 1.0
    # what that audio is compared with: "trajectory" (the audio of the clip's own trajectory: stage two imitates the
    # backbone's reconstruction) or "audio" (the augmented clip itself; stage two keeps the clips in memory)
    decoder_loss_target: str = "trajectory"
    # twostage models: the backbone's decoder (conv stack and noise branch) learns too, from that audio loss against
    # the clips, so it renders the trajectories stage two decodes (smoother than the encoder's) rather than the
    # encoder's own; the encoder stays frozen, so the stored trajectories stay valid
    finetune_decoder: bool = False
    # weight, relative to the log-mel term, of a multi-scale STFT loss (train.stft_sizes) in that decoder loss
    decoder_stft_weight: float = 0.0
    # twostage models: weight of a loss on prior samples' loudness (vaedemo.nn.loudness): each step decodes this many
    # prior samples and pulls their levels' distribution (sorted) toward the training clips' (in dB), so that the
    # prior's in-between vectors do not decode quieter than the hits around them; the prior itself is not trained by it
    prior_level_weight: float = 0.0
    prior_level_samples: int = 8
    # start from a bundle's weights (folder or hf:// id; same tensor shapes, e.g. a causal fine-tune of a centred
    # model); ignored on --resume, where last.ckpt holds the weights
    init_from: str | None = None


@dataclass
class Config:
    """The whole experiment."""

    name: str = "vaedemo"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def dump_yaml(self, path: str | Path) -> None:
        """Written aside, then renamed over ``path``: a run's config.yaml, cut short by a full disk or a kill, was read
        back on resume as a valid config of defaults (other losses, another phase)."""
        write_outputs({str(path): yaml.safe_dump(self.to_dict(), sort_keys=False)})


# ----------------------------------------------------------------------------------------------------------- building


def _apply_override(tree: dict, item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like key.subkey=value.")
    key, raw = item.split("=", 1)
    try:
        value = loads(raw) if raw.strip() else ""
    except DuplicateKeyError as e:
        raise ConfigError(f"override {shown(key.strip())}: {e}.") from None
    except yaml.YAMLError:
        value = raw
    except RecursionError:
        raise ConfigError(f"override {shown(key.strip())} holds a value nested too deeply to read.") from None
    except ValueError:  # an integer of more digits than Python converts (4300)
        raise ConfigError(f"override {shown(key.strip())} holds a number too long to read.") from None
    parts = key.strip().split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{item}' goes below '{p}', which is not a section.")
    node[parts[-1]] = value


# old dotted key -> the key it was renamed to (or the section it moved to); old configs and runs keep loading
RENAMED_KEYS = {
    "train.warmup_steps": "train.vae_steps",
    "data.sample_rate": "model.sample_rate",
    "data.channels": "model.channels",
    "data.clip_length": "model.clip_length",
    "model.discriminator": "train.discriminator",
}
_MISSING = object()


def _pop(tree: dict, dotted: str) -> Any:
    *parents, leaf = dotted.split(".")
    for p in parents:
        tree = tree.get(p) if isinstance(tree, dict) else None
    return tree.pop(leaf, _MISSING) if isinstance(tree, dict) else _MISSING


def _put(tree: dict, dotted: str, value: Any) -> bool:
    """Set ``dotted`` to ``value`` unless it is already set; returns whether it was set."""
    *parents, leaf = dotted.split(".")
    for p in parents:
        tree = tree.setdefault(p, {})
    if leaf in tree:
        return False
    tree[leaf] = value
    return True


def rename_old_keys(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Move keys of :data:`RENAMED_KEYS` to their new names, warning once per key; both given is an error."""
    values = copy.deepcopy(values)
    for old, new in RENAMED_KEYS.items():
        value = _pop(values, old)
        if value is _MISSING:
            continue
        if not _put(values, new, value):
            raise ConfigError(f"{source} sets both {old} and {new}; {old} is the old name of {new}, keep only {new}.")
        warnings.warn(f"{old} in {source} is now called {new}; it was read as {new} (rename it).", FutureWarning,
                      stacklevel=3)  # fmt: skip
    return values


def model_config_from_dict(values: dict[str, Any], source: str = "the model config") -> ModelConfig:
    """Build and validate a :class:`ModelConfig` alone (what a bundle stores)."""
    if not isinstance(values or {}, dict):
        raise ConfigError(f"{source} must hold the model's keys as a mapping, got {type(values).__name__}.")
    m = build_dataclass(ModelConfig, merge_dicts(dataclasses.asdict(ModelConfig()), values or {}), "model.", source)
    validate_model(m, source)
    return m


def config_from_dict(values: dict[str, Any], source: str = "the config") -> Config:
    """Build and validate a :class:`Config` from a (possibly partial) nested dict."""
    if not isinstance(values or {}, dict):
        raise ConfigError(f"{source} must hold a mapping of sections (data, model, train, trainer).")
    values = rename_old_keys(values or {}, source)
    trainer = values.get("trainer")
    precision = trainer.get("precision") if isinstance(trainer, dict) else None
    if isinstance(precision, int) and not isinstance(precision, bool):  # Lightning's 16, 32, 64: YAML reads integers
        values = merge_dicts(values, {"trainer": {"precision": str(precision)}})  # ("must be a string, got 32")
    cfg = build_dataclass(Config, merge_dicts(dataclasses.asdict(Config()), values), "", source)
    validate(cfg, source)
    return cfg


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Load YAML (or start from defaults when ``path`` is None), apply ``key=value`` overrides, validate."""
    values: dict[str, Any] = {}
    source = config_source(path)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {source} does not exist.")
        values = read_yaml(p, source) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{source} must hold a mapping of sections (data, model, train, trainer).")
    for item in overrides or []:
        _apply_override(values, item)
    return config_from_dict(values, config_source(path, overrides))


def config_source(path: str | Path | None, overrides: list[str] | None = None) -> str:
    """How messages name a config: its file (or the defaults) and the overrides applied to it."""
    source = "the defaults" if path is None else str(path)
    return f"{source} with overrides {' '.join(overrides)}" if overrides else source


def _power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def _need(cond: bool, msg: str, source: str) -> None:
    if not cond:
        raise ConfigError(f"{msg} (in {source}).")


def validate_model(m: ModelConfig, source: str = "the config") -> None:
    """Check the model's keys and their relations; raise :class:`ConfigError` naming the key and the file."""

    def need(cond: bool, msg: str) -> None:
        _need(cond, msg, source)

    # the rate first: the bounds read clip_length against it (a rate of 0 was "clip_length must be at most 10 minutes")
    need(m.sample_rate >= 8000, f"model.sample_rate must be at least 8000, got {m.sample_rate}")
    _check_model_bounds(m, need)
    need(_power_of_two(m.bands), f"model.bands must be a power of two, got {m.bands}")
    need(m.latent_mode in LATENT_MODES, f"model.latent_mode must be one of {LATENT_MODES}, got '{m.latent_mode}'")
    need(len(m.ratios) > 0 and all(r >= 1 for r in m.ratios), f"model.ratios must be positive, got {m.ratios}")
    need(m.capacity >= 1 and m.latent_size >= 1, "model.capacity and model.latent_size must be positive")
    need(m.trajectory_size >= 1 and m.head_hidden >= 1, "model.trajectory_size and model.head_hidden must be positive")
    need(0.0 <= m.head_dropout < 1.0, f"model.head_dropout must be in [0, 1), got {m.head_dropout}")
    need(m.kernel_size >= 1 and m.kernel_size % 2 == 1, f"model.kernel_size must be odd and positive, got {m.kernel_size}")
    need(all(d >= 1 for d in m.dilations), f"model.dilations must be positive, got {m.dilations}")
    need(m.single_channels >= 1 and m.flow_hidden >= 1, "model.single_channels and model.flow_hidden must be positive")
    need(0.0 < m.flow_scale_bound <= 20.0, f"model.flow_scale_bound must be in (0, 20], got {m.flow_scale_bound}")
    need(20.0 <= m.pqmf_attenuation <= 300.0, f"model.pqmf_attenuation must be in [20, 300] dB, got {m.pqmf_attenuation}")
    need(m.channels in (1, 2), f"model.channels must be 1 (mono) or 2 (stereo), got {m.channels}")
    need(
        m.clip_length > 0 and m.clip_length % m.hop == 0,
        f"model.clip_length ({m.clip_length}) must be a positive multiple of the model's total hop "
        f"{m.hop} (bands {m.bands} x ratios {m.ratios}); the nearest is {max(1, round(m.clip_length / m.hop)) * m.hop}",
    )
    need(not m.level_latent or m.latent_mode == "twostage",
         f"model.level_latent needs model.latent_mode twostage, got '{m.latent_mode}'")  # fmt: skip
    # a one-vector model encodes nothing before its clip has ended: a causal one would only lag (and it cannot stream)
    need(not m.causal or m.latent_mode == "temporal",
         f"model.causal needs model.latent_mode temporal (a latent time series), got '{m.latent_mode}'")  # fmt: skip
    flows = m.posterior_flow_layers > 0 or m.prior_flow_layers > 0
    need(not flows or m.latent_size >= 2, "model.latent_size must be at least 2 when flows are used")
    need(m.posterior_flow_layers >= 0 and m.prior_flow_layers >= 0, "flow layer counts must not be negative")
    need(m.upsampling in UPSAMPLINGS, f"model.upsampling must be one of {', '.join(UPSAMPLINGS)}, got {shown(m.upsampling)}")
    need(m.noise_bands == 0 or m.noise_bands >= 2, f"model.noise_bands must be 0 (off) or at least 2, got {m.noise_bands}")
    need(
        m.noise_bands == 0 or (m.noise_hop >= 1 and math.prod(m.ratios) % m.noise_hop == 0),
        f"model.noise_hop ({m.noise_hop}) must divide the product of model.ratios ({math.prod(m.ratios)}): a noise "
        "block lies inside one latent frame",
    )
    need(m.partials >= 0, f"model.partials must be 0 (off) or positive, got {m.partials}")
    need(not m.noise_relative or m.noise_bands > 0, "model.noise_relative needs a noise branch (model.noise_bands > 0)")
    need(m.encoder in ENCODERS, f"model.encoder must be one of {', '.join(ENCODERS)}, got {shown(m.encoder)}")
    need(m.encoder_width >= 1, f"model.encoder_width must be positive, got {m.encoder_width}")
    # its long window is four frames, and its mel tables grow with it
    need(m.encoder != "spectral" or 4 <= m.hop <= MAX_SPECTRAL_HOP,
         f"model.encoder spectral needs a hop (model.bands x the product of model.ratios) of 4 to {MAX_SPECTRAL_HOP} "
         f"samples, got {m.hop}")  # fmt: skip


# Upper bounds far above any sensible model, so that a hostile or mistyped config (a bundle from the Hub, say) is
# refused in one sentence instead of spending minutes and gigabytes; the parameter count is checked on loading too.
MODEL_BOUNDS = {"sample_rate": 192_000, "bands": 128, "kernel_size": 63, "single_channels": 4096,
                "trajectory_size": 4096, "head_hidden": 65_536,
                "posterior_flow_layers": 64, "prior_flow_layers": 64, "latent_size": 65_536, "flow_hidden": 65_536,
                "capacity": 4096, "noise_bands": 256, "partials": 1024, "encoder_width": 4096}  # fmt: skip
MAX_SPECTRAL_HOP = 4096  # samples per latent frame of a spectral encoder (the shipped models': 512)


def _check_model_bounds(m: ModelConfig, need) -> None:
    for key, bound in MODEL_BOUNDS.items():
        need(getattr(m, key) <= bound, f"model.{key} must be at most {bound}, got {getattr(m, key)}")
    ratios_ok = len(m.ratios) <= 8 and max(m.ratios, default=1) <= 64
    need(ratios_ok, f"model.ratios must be at most 8 strides of at most 64, got {m.ratios}")
    need(len(m.dilations) <= 16 and max(m.dilations, default=1) <= 4096, "model.dilations must be at most 16 values <= 4096")
    need(m.clip_length <= 600 * m.sample_rate, f"model.clip_length must be at most 10 minutes, got {m.clip_length}")


DISCRIMINATOR_MAX_CAPACITY = 64


def _validate_discriminator(disc: DiscriminatorConfig, clip_length: int, need) -> None:
    """train.discriminator: nothing checked it, and its layers failed only at the first adversarial step, after the
    whole VAE phase (a ZeroDivisionError for a period of 0, torch's padding error for an STFT size above the clip)."""
    # capacity 64 is 51 M parameters (the default 16: 3 M), 128 already 206 M; a period beyond the clip folds it
    # into one column, and a billion allocated that much at the first adversarial step, after the whole VAE phase
    need(1 <= disc.capacity <= DISCRIMINATOR_MAX_CAPACITY,
         f"train.discriminator.capacity must be from 1 to {DISCRIMINATOR_MAX_CAPACITY}, got {disc.capacity}")
    need(disc.scales >= 0, f"train.discriminator.scales must not be negative, got {disc.scales}")
    need(all(1 <= p <= clip_length for p in disc.periods),
         f"train.discriminator.periods must lie in [1, model.clip_length ({clip_length})], got {disc.periods}")
    need(disc.scales or disc.periods or disc.stft_sizes,
         "train.discriminator needs at least one of scales, periods and stft_sizes")  # fmt: skip
    # each scale halves the audio of the one before: the last must still hold two samples
    need(disc.scales <= 1 or 2 ** (disc.scales - 1) <= clip_length,
         f"train.discriminator.scales ({disc.scales}) halves model.clip_length ({clip_length}) too often: at most "
         f"{clip_length.bit_length()}")  # fmt: skip
    # an STFT's centred frames pad half a window of the clip's own samples on each side (and hop a quarter window)
    need(all(4 <= n <= clip_length for n in disc.stft_sizes),
         f"train.discriminator.stft_sizes must lie in [4, model.clip_length ({clip_length})], got {disc.stft_sizes}")


def _numbers(tree: dict, prefix: str = ""):
    """(dotted key, value) of every float in a config's dict, lists' items included."""
    for key, value in tree.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                yield from _numbers(item, f"{prefix}{key}.")
            elif isinstance(item, float):
                yield f"{prefix}{key}", item


def validate(cfg: Config, source: str = "the config") -> None:
    """Check the whole experiment: the model, then data, training and trainer keys."""
    d, t = cfg.data, cfg.train

    def need(cond: bool, msg: str) -> None:
        _need(cond, msg, source)

    validate_model(cfg.model, source)
    need(d.mode in DATA_MODES, f"data.mode must be one of {DATA_MODES}, got '{d.mode}'")
    # (as a path, hf://org/name read "hf:/org/name", which then did not exist)
    need(not str(d.root).startswith("hf://"), f"data.root must be a local folder of audio files (nothing is downloaded "
                                              f"for training), got the Hub id {str(d.root)[:80]}")  # fmt: skip
    need(0.0 <= d.val_fraction < 1.0, f"data.val_fraction must be in [0, 1), got {d.val_fraction}")
    a = d.augment
    need(0.0 <= a.gain_db <= 40.0, f"data.augment.gain_db must be in [0, 40], got {a.gain_db}")
    need(0.0 <= a.rate <= 1.0, f"data.augment.rate must be in [0, 1], got {a.rate}")
    need(0.0 <= a.mix <= 1.0, f"data.augment.mix must be a probability in [0, 1], got {a.mix}")
    need(0.0 <= a.eq_db <= 24.0, f"data.augment.eq_db must be in [0, 24], got {a.eq_db}")
    need(0.0 <= a.band_limit <= 1.0, f"data.augment.band_limit must be a probability in [0, 1], got {a.band_limit}")
    need(d.max_files is None or d.max_files >= 1, f"data.max_files must be positive (or null: all), got {d.max_files}")
    need(t.batch_size >= 1 and t.max_steps >= 1, "train.batch_size and train.max_steps must be positive")
    need(t.num_workers >= 0, f"train.num_workers must not be negative, got {t.num_workers}")
    for key in ("lr", "disc_lr"):  # (0 trains nothing, which a gradient check wants)
        need(0.0 <= getattr(t, key) < math.inf, f"train.{key} must be a number from 0 up, got {getattr(t, key)}")
    need(all(0.0 <= b < 1.0 for b in t.betas), f"train.betas must lie in [0, 1), got {t.betas}")
    for key in ("val_every_n_steps", "val_batches", "checkpoint_every_n_steps", "trajectory_copies",
                "decoder_loss_clips"):  # fmt: skip
        need(getattr(t, key) >= 1, f"train.{key} must be at least 1, got {getattr(t, key)}")
    for key in ("beta", "beta_start", "beta_warmup_steps", "adversarial_weight", "feature_matching_weight",
                "log_audio_every_n_val"):  # fmt: skip
        need(0 <= getattr(t, key) < math.inf, f"train.{key} must not be negative, got {getattr(t, key)}")
    need(t.grad_clip is None or 0.0 <= t.grad_clip < math.inf,
         f"train.grad_clip must not be negative (0 or null: no clipping), got {t.grad_clip}")  # fmt: skip
    need(t.vae_steps >= 0 and t.discriminator_warmup_len >= 0, "train phase lengths must not be negative")
    need(t.lr_decay_start is None or t.lr_decay_start >= 0, "train.lr_decay_start must not be negative")
    need(0.0 < t.lr_final_factor <= 1.0, f"train.lr_final_factor must be in (0, 1], got {t.lr_final_factor}")
    need(t.noise_lr_factor > 0, f"train.noise_lr_factor must be positive, got {t.noise_lr_factor}")
    need(t.partials_lr_factor > 0, f"train.partials_lr_factor must be positive, got {t.partials_lr_factor}")
    need(len(t.betas) == 2, f"train.betas must hold two numbers, got {t.betas}")
    need(len(t.stft_sizes) > 0, "train.stft_sizes must list at least one FFT size")
    need(t.decoder_loss_target in ("trajectory", "audio"),
         f"train.decoder_loss_target must be 'trajectory' or 'audio', got '{t.decoder_loss_target}'")  # fmt: skip
    need(t.decoder_stft_weight >= 0, f"train.decoder_stft_weight must not be negative, got {t.decoder_stft_weight}")
    need(t.trajectory_weight >= 0, f"train.trajectory_weight must not be negative, got {t.trajectory_weight}")
    audio_loss = cfg.model.latent_mode == "twostage" and bool(t.mel_sizes) and t.decoder_loss_target == "audio"
    need(not t.finetune_decoder or audio_loss,
         "train.finetune_decoder needs model.latent_mode twostage, train.mel_sizes and train.decoder_loss_target audio")
    need(not (t.freeze_decoder and t.decode_posterior_mean),
         "train.freeze_decoder and train.decode_posterior_mean freeze opposite halves of the model: set one of them")
    need(not (t.freeze_decoder and cfg.model.latent_mode == "twostage") or (audio_loss and not t.finetune_decoder),
         "train.freeze_decoder on a twostage model needs train.mel_sizes and train.decoder_loss_target audio, and not "
         "train.finetune_decoder")
    need(t.encoder_distill_steps >= 0, f"train.encoder_distill_steps must not be negative, got {t.encoder_distill_steps}")
    need(not t.encoder_distill_steps or (t.freeze_decoder and t.init_from and cfg.model.latent_mode == "temporal"
                                         and t.encoder_distill_steps <= t.vae_steps),
         "train.encoder_distill_steps needs train.freeze_decoder, train.init_from (the encoder it learns from), "
         "model.latent_mode temporal and at most train.vae_steps steps")  # fmt: skip
    frozen_side = t.freeze_decoder or t.freeze_encoder
    need(not t.freeze_prior or (frozen_side and cfg.model.latent_mode == "twostage" and cfg.model.prior_flow_layers),
         "train.freeze_prior needs train.freeze_decoder or train.freeze_encoder on a twostage model with a prior flow "
         "(model.prior_flow_layers)")
    need(t.prior_level_weight >= 0 and t.prior_level_samples >= 2,
         "train.prior_level_weight must not be negative and train.prior_level_samples must be at least 2")
    need(not t.prior_level_weight or (cfg.model.latent_mode == "twostage" and not cfg.model.level_latent),
         "train.prior_level_weight needs model.latent_mode twostage without model.level_latent (which sets levels itself)")
    need(t.discriminator_precision in DISCRIMINATOR_PRECISIONS,
         f"train.discriminator_precision must be one of {', '.join(DISCRIMINATOR_PRECISIONS)}")
    need(t.mel_bands >= 1 and t.mel_weight >= 0, "train.mel_bands must be positive and train.mel_weight not negative")
    need(t.loss_floor_db is None or t.loss_floor_db > 0, f"train.loss_floor_db must be positive, got {t.loss_floor_db}")
    need(t.frame_buzz_weight >= 0, f"train.frame_buzz_weight must not be negative, got {t.frame_buzz_weight}")
    buzz_in_stage_two = bool(t.mel_sizes) and t.decoder_loss_target == "audio"
    need(not t.frame_buzz_weight or cfg.model.latent_mode != "twostage" or buzz_in_stage_two,
         "train.frame_buzz_weight on a twostage model needs train.mel_sizes and train.decoder_loss_target audio (it is a "
         "term of the decoder loss, and a trajectory's audio has the decoder's own comb)")
    need(not t.frame_buzz_weight or cfg.model.clip_length >= 4 * cfg.model.hop,
         f"train.frame_buzz_weight needs clips of at least 4 latent frames ({4 * cfg.model.hop} samples), as its "
         f"spectrum of 8 frames does")
    need(
        all(_power_of_two(p) and p >= 4 for p in t.stft_sizes + t.band_stft_sizes + t.mel_sizes),
        "train.stft_sizes, train.band_stft_sizes and train.mel_sizes must be powers of two of at least 4 (a hop of a "
        "quarter window: 2 has none)",
    )
    _validate_discriminator(t.discriminator, cfg.model.clip_length, need)
    # read by two-stage models only: on another, a train.backbone meant for stage two trained something else silently
    need(t.backbone is None or cfg.model.latent_mode == "twostage",
         f"train.backbone is read by two-stage models only (model.latent_mode twostage), and this one is "
         f"{cfg.model.latent_mode}; remove it or set the mode")  # fmt: skip
    # Lightning seeds numpy, which takes 32-bit seeds: another was its ValueError traceback before the run started
    need(0 <= t.seed < 2**32, f"train.seed must be in [0, 2**32), got {t.seed}")
    # an empty one was the current folder: config.yaml, bundle/, checkpoints/ and tb/ written wherever it ran
    need(str(t.run_dir).strip(), "train.run_dir must name a folder (it was empty: the run would fill the current one)")
    need(cfg.trainer.devices >= 1 and cfg.trainer.num_nodes >= 1, "trainer.devices and num_nodes must be positive")
    need(str(cfg.trainer.precision) in TRAINER_PRECISIONS,
         f"trainer.precision must be one of {', '.join(TRAINER_PRECISIONS)} (the weights stay float32; half precision "
         f"only inside autocast), got {shown(cfg.trainer.precision)}")  # fmt: skip
    # what the checks above leave: a loss weight of inf trained nothing (every step skipped) and exited 0
    for key, value in _numbers(cfg.to_dict()):
        need(math.isfinite(value), f"{key} must be a finite number, got {value}")
