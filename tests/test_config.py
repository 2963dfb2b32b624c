import pytest

from vaedemo.config import Config, config_from_dict, load_config
from vaedemo.errors import ConfigError
from vaedemo.nn.vae import AudioVAE

CONFIGS = ["configs/temporal_mono.yaml", "configs/single_flow_mono.yaml", "configs/single_flow_stereo.yaml"]


@pytest.mark.parametrize("path", CONFIGS)
def test_shipped_configs_load_and_build(path):
    cfg = load_config(path)
    model = AudioVAE(cfg.model)
    assert cfg.model.clip_length % cfg.model.hop == 0
    assert sum(p.numel() for p in model.parameters()) > 0


def test_defaults_and_dotted_overrides():
    cfg = load_config(None, ["model.latent_size=256", "model.ratios=[2, 2]", "train.lr=0.0005", "model.clip_length=4096"])
    assert cfg.model.latent_size == 256 and cfg.model.ratios == [2, 2] and cfg.train.lr == 0.0005
    assert cfg.model.hop == 16 * 4
    assert isinstance(load_config(None, ["train.beta=1"]).train.beta, float)  # ints are fine for floats


def test_round_trip_through_dict_and_yaml(tmp_path):
    cfg = load_config("configs/single_flow_mono.yaml", ["model.latent_size=64"])
    assert config_from_dict(cfg.to_dict()) == cfg
    cfg.dump_yaml(tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


def test_unknown_key_names_key_file_and_suggestion(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model:\n  latnet_size: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'model.latnet_size' in .*bad.yaml; did you mean 'model.latent_size'"):
        load_config(p)
    with pytest.raises(ConfigError, match="unknown key 'modle'"):
        load_config(None, ["modle.latent_size=3"])


def test_wrong_type_names_key_and_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model:\n  latent_size: lots\n")
    with pytest.raises(ConfigError, match=r"model.latent_size in .*bad.yaml must be an integer, got 'lots'"):
        load_config(p)
    with pytest.raises(ConfigError, match="model.causal .* must be true or false"):
        load_config(None, ["model.causal=3"])
    for mode in ("single", "twostage"):  # a one-vector model needs its whole clip: it cannot be causal
        with pytest.raises(ConfigError, match=f"model.causal needs model.latent_mode temporal .*, got '{mode}'"):
            load_config(None, ["model.causal=true", f"model.latent_mode={mode}"])
    with pytest.raises(ConfigError, match="model.ratios .* must be a list"):
        load_config(None, ["model.ratios=4"])


def test_clip_length_must_be_multiple_of_hop(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  clip_length: 44100\n")
    pattern = r"model.clip_length \(44100\) must be a positive multiple of .* hop 512.*nearest is 44032.*c.yaml"
    with pytest.raises(ConfigError, match=pattern):
        load_config(p)


def test_bands_power_of_two():
    with pytest.raises(ConfigError, match="model.bands must be a power of two, got 12"):
        load_config(None, ["model.bands=12"])


@pytest.mark.parametrize("override, message", [
    ("train.lr=-1e-3", "train.lr must be a number from 0 up, got -0.001"),
    ("train.disc_lr=.inf", "train.disc_lr must be a number from 0 up, got inf"),
    ("train.betas=[1.5, 0.9]", r"train.betas must lie in \[0, 1\)"),
    ("train.val_every_n_steps=0", "train.val_every_n_steps must be at least 1, got 0"),
    ("train.val_batches=0", "train.val_batches must be at least 1, got 0"),
    ("train.trajectory_copies=0", "train.trajectory_copies must be at least 1, got 0"),
    ("train.backbone=checkpoints/drums_temporal", "train.backbone is read by two-stage models only"),
    ("train.num_workers=-1", "train.num_workers must not be negative, got -1"),
    ("train.grad_clip=-1", r"train.grad_clip must not be negative \(0 or null: no clipping\), got -1.0"),
    ("train.beta=-1", "train.beta must not be negative, got -1.0"),
    ("data.max_files=0", r"data.max_files must be positive \(or null: all\), got 0"),
    ("data.val_fraction=1", r"data.val_fraction must be in \[0, 1\), got 1.0"),  # nothing left to train on
    ("trainer.precision=16-true", "trainer.precision must be one of 32-true, .*, got '16-true'"),
    ("model.kernel_size=-1", "model.kernel_size must be odd and positive, got -1"),
    ("model.kernel_size=4", "model.kernel_size must be odd and positive, got 4"),  # an even kernel has no centre
    ("model.dilations=[1, 0, 9]", r"model.dilations must be positive, got \[1, 0, 9\]"),
    ("model.flow_hidden=-5", "model.single_channels and model.flow_hidden must be positive"),
    ("model.flow_scale_bound=.nan", r"model.flow_scale_bound must be in \(0, 20\], got nan"),
    ("model.pqmf_attenuation=1e308", r"model.pqmf_attenuation must be in \[20, 300\] dB, got 1e\+308"),
    ("model.sample_rate=0", "model.sample_rate must be at least 8000, got 0"),  # not "clip_length must be at most 10 min"
    # the discriminator's keys: each was a traceback at the first adversarial step, after the whole VAE phase
    ("train.discriminator.capacity=0", "train.discriminator.capacity must be from 1 to 64, got 0"),
    ("train.discriminator.capacity=2000", "train.discriminator.capacity must be from 1 to 64, got 2000"),  # 20 GB
    ("train.discriminator.periods=[2, 0]", r"train.discriminator.periods must lie in \[1, model.clip_length "
                                           r"\(44032\)\], got \[2, 0\]"),
    ("train.discriminator.periods=[1000000000]", r"train.discriminator.periods must lie in \[1, model.clip_length "),
    ("train.stft_sizes=[2]", "train.stft_sizes, train.band_stft_sizes and train.mel_sizes must be powers of two of "
                             "at least 4"),  # a hop of n // 4 = 0: torch's error at the first step
    ("train.band_stft_sizes=[1]", "must be powers of two of at least 4"),
    ("train.mel_sizes=[2]", "must be powers of two of at least 4"),  # no FFT bin for any mel filter
    ("train.discriminator.stft_sizes=[65536]", r"train.discriminator.stft_sizes must lie in \[4, model.clip_length "
                                               r"\(44032\)\], got \[65536\]"),
    ("train.discriminator.stft_sizes=[0]", r"train.discriminator.stft_sizes must lie in \[4, "),
    ("train.discriminator.scales=17", r"train.discriminator.scales \(17\) halves model.clip_length \(44032\) too "
                                      "often: at most 16"),
    ("train.seed=-1", r"train.seed must be in \[0, 2\*\*32\), got -1"),
    ("train.run_dir=", "train.run_dir must name a folder"),  # the current folder, filled with the run's files
    # as a path it read "hf:/a/b", which then did not exist
    ("data.root=hf://a/b", "data.root must be a local folder of audio files .*, got the Hub id hf://a/b"),
])  # fmt: skip
def test_values_that_cannot_train_are_one_sentence_before_anything_runs(override, message):
    """A sign or range that Adam, Lightning or a layer would refuse with a traceback minutes later (a negative lr), or
    accept and train wrongly (a negative grad_clip flips every gradient, a negative beta maximises the KL)."""
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_a_number_with_an_exponent_is_a_number():
    """YAML 1.1 reads 1e-4 as a string; the README writes rates that way."""
    cfg = load_config(None, ["train.lr=1e-4", "train.betas=[0.5, 9e-1]"])
    assert cfg.train.lr == 1e-4 and cfg.train.betas == [0.5, 0.9]
    with pytest.raises(ConfigError, match="train.lr .* must be a number, got 'nan'"):
        load_config(None, ["train.lr=nan"])


def test_unknown_upsampling_names_the_choices():
    with pytest.raises(ConfigError, match="model.upsampling must be one of transposed, resize, got 'linear'"):
        load_config(None, ["model.upsampling=linear"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_default_config_is_valid():
    assert isinstance(config_from_dict({}), Config)


@pytest.mark.parametrize(
    "old,new,value",
    [("train.warmup_steps", "train.vae_steps", 7), ("data.sample_rate", "model.sample_rate", 22050),
     ("data.channels", "model.channels", 2), ("data.clip_length", "model.clip_length", 4096)],
)  # fmt: skip
def test_renamed_keys_are_read_with_a_warning_naming_the_new_key(old, new, value):
    with pytest.warns(FutureWarning, match=rf"{old} in .* is now called {new}"):
        cfg = load_config(None, [f"{old}={value}"])
    section, key = new.split(".")
    assert getattr(getattr(cfg, section), key) == value


def test_the_discriminator_section_moved_to_train(tmp_path):
    p = tmp_path / "old.yaml"
    p.write_text("model:\n  discriminator:\n    capacity: 3\n    scales: 1\n")
    with pytest.warns(FutureWarning, match="model.discriminator in .*old.yaml is now called train.discriminator"):
        cfg = load_config(p)
    assert cfg.train.discriminator.capacity == 3 and cfg.train.discriminator.scales == 1


def test_old_and_new_name_together_are_refused():
    with pytest.raises(ConfigError, match="sets both train.warmup_steps and train.vae_steps"):
        load_config(None, ["train.warmup_steps=3", "train.vae_steps=4"])


def test_a_discriminator_of_nothing_is_one_sentence():
    with pytest.raises(ConfigError, match="train.discriminator needs at least one of scales, periods and stft_sizes"):
        load_config(None, ["train.discriminator.scales=0", "train.discriminator.periods=[]"])


def test_an_integer_trainer_precision_is_read_as_lightning_reads_it(tmp_path):
    """Lightning's precision 16, 32 or 64 is an integer in YAML: it was refused as "must be a string, got 32"."""
    assert load_config(None, ["trainer.precision=32"]).trainer.precision == "32"
    p = tmp_path / "c.yaml"
    p.write_text("trainer:\n  precision: 64\n")
    assert load_config(p).trainer.precision == "64"
    with pytest.raises(ConfigError, match="trainer.precision must be one of .*, got '8'"):
        load_config(None, ["trainer.precision=8"])


def test_a_config_nested_too_deeply_or_with_a_number_too_long_is_one_sentence(tmp_path):
    p = tmp_path / "deep.yaml"
    p.write_text("train:\n  lr: " + "[" * 5000)
    with pytest.raises(ConfigError, match="is nested too deeply to read"):
        load_config(p)
    p.write_text("train:\n  lr: " + "9" * 5000)
    with pytest.raises(ConfigError, match="holds a number too long to read"):
        load_config(p)
    with pytest.raises(ConfigError, match="override 'train.lr' holds a value nested too deeply"):
        load_config(None, ["train.lr=" + "[" * 5000])
    with pytest.raises(ConfigError, match="override 'train.lr' holds a number too long"):
        load_config(None, ["train.lr=" + "9" * 5000])


def test_a_key_written_twice_is_refused_and_merge_keys_still_override(tmp_path):
    """YAML keeps the last of two equal keys: a second ``train:`` section silently dropped the first one's settings."""
    p = tmp_path / "twice.yaml"
    p.write_text("train:\n  lr: 0.001\nmodel:\n  bands: 8\ntrain:\n  max_steps: 3\n")
    with pytest.raises(ConfigError, match=r"twice.yaml is not valid YAML \(the key 'train' is written twice in one "
                                          r"mapping \(line 5\); YAML would keep only the last\)\.$"):  # fmt: skip
        load_config(p)
    with pytest.raises(ConfigError, match="^override 'train': the key 'lr' is written twice"):
        load_config(None, ["train={lr: 0.1, lr: 0.2}"])
    p.write_text("train:\n  <<: {lr: 0.1, seed: 3}\n  seed: 4\n")
    values = load_config(p).train
    assert (values.lr, values.seed) == (0.1, 4)  # what a merge key brings in is overridden, as YAML intends
    # a merge of a mapping that itself merges and overrides (flattened in place before its own turn came)
    p.write_text("name: x\ndata:\n  augment: &aug\n    <<: {gain_db: 3.0, rate: 0.1}\n    rate: 0.2\n"
                 "trainer:\n  accelerator: cpu\n  <<: {}\ntrain: {}\nmodel: {}\n")  # fmt: skip
    assert load_config(p).data.augment.rate == 0.2
    import yaml

    from vaedemo.yamlfile import loads

    for text in ("a: &a {x: 1}\nb:\n  inner: &m\n    <<: *a\n    x: 2\nc:\n  <<: *m\n", "=: 1\n"):
        assert loads(text) == yaml.safe_load(text)  # read as YAML reads them
    p.write_bytes(b"train:\n  lr: \xff\n")
    with pytest.raises(ConfigError, match="twice.yaml is not UTF-8 text.$"):
        load_config(p)


def test_a_value_of_shared_aliases_is_quoted_in_a_few_characters(tmp_path):
    """485 bytes of YAML aliases are 10^9 strings once the type error printed the value whole (a MemoryError after
    17 s, not a sentence)."""
    anchors = ['&a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        anchors.append(f"&{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    p = tmp_path / "laughs.yaml"
    p.write_text("anchors:\n" + "".join(f"  - {a}\n" for a in anchors) + "model:\n  sample_rate: *i\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "model.sample_rate" in str(e.value) and len(str(e.value)) < 600


@pytest.mark.parametrize("key", ["train.mel_weight", "train.noise_lr_factor", "train.loss_floor_db",
                                 "train.decoder_stft_weight", "train.trajectory_weight"])  # fmt: skip
def test_an_infinite_number_is_refused(key):
    """A loss weight of inf trained nothing (every step skipped as non-finite) and exited 0 with a bundle."""
    with pytest.raises(ConfigError, match=f"{key} must be a finite number, got inf"):
        load_config(None, [f"{key}=.inf"])


def test_a_runs_config_is_written_aside_so_a_full_disk_leaves_the_old_one(tmp_path, monkeypatch):
    """config.yaml was truncated and then written: cut short by a full disk (or a kill), it was read back on resume as
    a valid config of defaults (other losses, the run back in an earlier phase)."""
    import errno
    import os

    from vaedemo.errors import VaedemoError

    path = tmp_path / "config.yaml"
    load_config(None, ["train.max_steps=7"]).dump_yaml(path)
    before = path.read_text()
    real = os.fdopen

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real(fd, mode)))
    with pytest.raises(VaedemoError, match="could not write .*config.yaml: No space left on device"):
        load_config(None, ["train.max_steps=9"]).dump_yaml(path)
    assert path.read_text() == before and list(tmp_path.iterdir()) == [path]
