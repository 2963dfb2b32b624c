"""Recipes (``python -m vaedemo.recipe``): a chain of real training runs, each reading an earlier step's bundle, run in
order, resumed and reused; the shipped recipe against what the shipped bundles recorded of their training."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import TINY

from vaedemo.errors import ConfigError
from vaedemo.recipe import Recipe, make_data
from vaedemo.recipe import main as recipe_main
from vaedemo.training.runner import finished, train_command

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "configs" / "recipes" / "shipped.yaml"
PATHS = ("train.run_dir", "train.init_from", "train.backbone")  # where a recipe's runs differ from the day's


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def test_the_shipped_recipe_trains_each_bundle_as_its_card_records(monkeypatch):
    """Every shipped bundle is a target, and its last step trains with the config the bundle recorded (every key it
    recorded; keys added to the code since then are absent from it), its inputs the recipe's own earlier bundles."""
    monkeypatch.chdir(ROOT)  # the recipe names configs relative to the repository
    recipe = Recipe(SHIPPED.relative_to(ROOT))
    shipped = sorted(p.name for p in (ROOT / "checkpoints").iterdir() if (p / "config.json").is_file())
    assert sorted(recipe.targets) == shipped
    for name, step in recipe.targets.items():
        doc = json.loads((ROOT / "checkpoints" / name / "config.json").read_text())
        recorded = {k: v for k, v in _flat(doc["training"]).items() if k not in PATHS}
        resolved = _flat(recipe.resolved(step).to_dict())
        assert {k: resolved.get(k) for k in recorded} == recorded, name
        assert doc["meta"]["recipe"] == f"python -m vaedemo.recipe configs/recipes/shipped.yaml --target {name}"
        assert doc["meta"]["recipe"] in (ROOT / "checkpoints" / name / "README.md").read_text()
    temporal = recipe.needs(recipe.targets["drums_temporal"])  # the wave backbone's chain, then its spectral encoder
    assert temporal[:7] == recipe.needs("temporal_mean") and len(temporal) == 11
    twostage = recipe.needs(recipe.targets["drums_twostage"])  # the shipped backbone's whole chain comes first
    assert twostage[:11] == temporal and len(twostage) == 17
    causal = recipe.needs(recipe.targets["drums_causal"])  # the wave backbone at 16000 steps, made causal, then spectral
    assert causal[:4] == temporal[:4] and causal[4:] == ["causal", "causal_spectral", "causal_spectral_mean"]


def test_the_shipped_recipe_scaled_down_keeps_every_phase_and_the_order_of_its_runs(monkeypatch):
    """--smoke: counts / 1000; the single-latent model still reaches its adversarial phase, the backbone's run still
    grows stage by stage with its decay starting where the previous stage ended, a 0 stays 0."""
    monkeypatch.chdir(ROOT)
    recipe = Recipe(SHIPPED.relative_to(ROOT), smoke=True)
    assert recipe.runs == Path("runs/recipes/shipped-smoke")
    t = recipe.resolved("single_flow").train
    assert t.max_steps > t.vae_steps + t.discriminator_warmup_len == 3 + 1  # 3500 + 300 of 4250
    chain = [recipe.resolved(s).train for s in ("temporal", "temporal_8600", "temporal_10800", "temporal_16000")]
    assert [c.max_steps for c in chain] == [6, 8, 10, 16] and chain[-1].lr_decay_start == chain[-2].max_steps
    assert chain[0].discriminator_warmup_len == 0  # no warm-up stays none
    assert recipe.resolved("temporal_eq").data.max_files == 12
    assert all(recipe.plain(s).train.max_steps >= 1000 for s in recipe.steps)  # what the recipe says, unscaled


def test_a_smoke_run_scales_an_encoders_distillation_with_the_other_counts(monkeypatch, tmp_path):
    """train.encoder_distill_steps is a step count too: unscaled (3000), it passed the smoke run's 5 VAE steps and the
    config was refused."""
    monkeypatch.chdir(ROOT)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"runs": str(tmp_path / "runs"), "steps": {
        "wave": {"config": "configs/drums_temporal.yaml"},
        "spectral": {"config": "configs/drums_temporal_spectral.yaml", "set": ["train.init_from={wave}"]}}},
                                   sort_keys=False))
    spectral = Recipe(path, smoke=True).resolved("spectral").train
    assert spectral.encoder_distill_steps == 3 < spectral.vae_steps == spectral.max_steps == 5


def _tiny_base(tmp_path: Path, data: Path) -> Path:
    values: dict = {}
    for item in TINY + [f"data.root={data}", "model.latent_mode=temporal", "train.val_every_n_steps=2",
                        "train.checkpoint_every_n_steps=1", "train.max_steps=2", "train.vae_steps=100"]:  # fmt: skip
        key, raw = item.split("=", 1)
        node = values
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = yaml.safe_load(raw)
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(values))
    return base


def _tiny_recipe(tmp_path: Path, drum_folder: Path) -> tuple[Path, dict, Path, Path]:
    """(recipe file, its dict, its data folder, base config): a run of two steps and a fine-tune of it."""
    data = tmp_path / "renders"
    base = _tiny_base(tmp_path, data)
    recipe = {
        "runs": str(tmp_path / "runs"),
        "data": {str(data): f"cp -r {drum_folder} {data}"},
        "targets": {"tiny_tuned": "tuned", "tiny": "longer"},
        "steps": {
            "first": {"config": str(base), "set": ["train.max_steps=40"]},
            "longer": {"resume": "first", "set": ["train.max_steps=41"]},
            "tuned": {"config": str(base), "set": ["train.init_from={longer}", "train.lr=0.0005"]},
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path, recipe, data, base


def test_a_recipe_runs_its_chain_in_order_resumes_and_reuses_it(drum_folder, tmp_path, capsys):
    """Real training: the data folder made by its command, a run killed part-way that the recipe resumes, then
    continued by a second step (to step 41, a validation every 2: the run ends on a bundle of step 41), a fine-tune
    from that run's bundle; the card names the recipe; a second call trains nothing; an edited step stops it with the
    key that differs."""
    path, recipe, data, base = _tiny_recipe(tmp_path, drum_folder)
    runs = tmp_path / "runs"

    shutil.copytree(drum_folder, data)  # the first step's run, killed once its first last.ckpt is saved
    killed = subprocess.Popen(train_command(str(base), ["train.max_steps=40", f"train.run_dir={runs / 'first'}"], False),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (runs / "first" / "checkpoints" / "last.ckpt").is_file() and time.monotonic() < deadline:
        time.sleep(0.02)
    killed.kill()
    killed.wait()
    assert not finished(runs / "first", 40)
    shutil.rmtree(data)  # the recipe makes it again
    capsys.readouterr()
    assert recipe_main([str(path), "--target", "tiny_tuned"]) == 0
    err = capsys.readouterr().err
    assert "first: " in err and "--resume" in next(ln for ln in err.splitlines() if "[recipe] first:" in ln)
    assert data.is_dir() and not Path(f"{data}.partial").exists()
    assert sorted(p.name for p in runs.iterdir()) == ["first", "tuned"]  # a run's folder: its first step's name
    longer = json.loads((runs / "first" / "bundle" / "config.json").read_text())
    assert longer["meta"]["step"] == 41 and longer["training"]["train"]["max_steps"] == 41
    tuned = json.loads((runs / "tuned" / "bundle" / "config.json").read_text())
    assert tuned["training"]["train"]["init_from"] == str(runs / "first" / "bundle")
    assert tuned["meta"]["recipe"] == f"python -m vaedemo.recipe {path} --target tiny_tuned"
    assert tuned["meta"]["recipe"] in (runs / "tuned" / "bundle" / "README.md").read_text()
    weights = (runs / "tuned" / "bundle" / "model.safetensors").read_bytes()
    assert recipe_main([str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("(done)") == 3 and "--resume" in out.splitlines()[1]
    assert recipe_main([str(path)]) == 0
    err = capsys.readouterr().err
    assert all(f"{step}: reusing" in err for step in ("first", "longer", "tuned")) and "vaedemo.train" not in err
    assert (runs / "tuned" / "bundle" / "model.safetensors").read_bytes() == weights
    recipe["steps"]["tuned"]["set"][1] = "train.lr=0.0002"  # edited since it trained
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    assert recipe_main([str(path)]) == 2
    err = capsys.readouterr().err
    assert "was trained with another config than step 'tuned'" in err and "train.lr: stored 0.0005, recipe 0.0002" in err


def test_a_smoke_run_trains_the_chain_scaled_down_beside_the_real_runs(drum_folder, tmp_path):
    """--smoke: every step count / 1000 (at least 1; a continuation's above the step it continues), in RUNS-smoke."""
    path, _, _, _ = _tiny_recipe(tmp_path, drum_folder)
    assert recipe_main([str(path), "--smoke"]) == 0
    smoke = tmp_path / "runs-smoke"
    steps = {name: json.loads((smoke / name / "bundle" / "config.json").read_text())["meta"]["step"]
             for name in ("first", "tuned")}  # fmt: skip
    assert steps == {"first": 2, "tuned": 1} and not (tmp_path / "runs").exists()
    tuned = json.loads((smoke / "tuned" / "bundle" / "config.json").read_text())
    assert tuned["training"]["data"]["max_files"] == 12
    assert tuned["training"]["train"]["init_from"] == str(smoke / "first" / "bundle")
    assert tuned["meta"]["recipe"].endswith("--target tiny_tuned --smoke")


def test_a_recipe_trains_on_your_own_data_in_runs_of_its_own(drum_folder, tmp_path, capsys):
    """--set data.root=FOLDER --runs DIR: the chain that made a bundle, on another folder (the recipe's data command
    not run), in runs that never mix with the recipe's; the card's command says so. --set alone is refused."""
    path, _, data, _ = _tiny_recipe(tmp_path, drum_folder)
    mine = tmp_path / "my sounds"
    shutil.copytree(drum_folder, mine)
    assert recipe_main([str(path), "--target", "tiny", "--set", f"data.root={mine}"]) == 2
    assert "--set changes every step's run: name a folder of their own with --runs DIR" in capsys.readouterr().err
    runs = tmp_path / "my runs"
    for managed in ("train.max_steps=5", "train.run_dir=elsewhere", "train.init_from=x"):  # what each step sets itself
        assert recipe_main([str(path), "--set", managed, "--runs", str(runs), "--dry-run"]) == 2
        assert f"--set {managed.split('=')[0]}: the recipe sets that key step by step" in capsys.readouterr().err
    assert recipe_main([str(path), "--target", "tiny", "--set", f"data.root={mine}", "--runs", str(runs), "--smoke"]) == 0
    doc = json.loads((tmp_path / "my runs-smoke" / "first" / "bundle" / "config.json").read_text())
    assert doc["training"]["data"]["root"] == str(mine) and doc["meta"]["step"] == 2
    assert not data.exists() and not (tmp_path / "runs").exists() and not (tmp_path / "runs-smoke").exists()
    command = shlex.split(doc["meta"]["recipe"])
    assert command[command.index("--set") + 1] == f"data.root={mine}" and command[command.index("--runs") + 1] == str(runs)


def _recipe(tmp_path: Path, steps: dict, **extra) -> Path:
    base = tmp_path / "base.yaml"
    base.write_text("name: base\n")
    path = tmp_path / "r.yaml"
    text = yaml.safe_dump({"steps": steps, **extra}).replace("BASE", str(base))
    path.write_text(text)
    return path


@pytest.mark.parametrize(("steps", "extra", "message"), [
    ({"a": {"config": "BASE", "resume": "a"}}, {}, "needs either a config or the step it resumes"),
    ({"a": {"resume": "b"}, "b": {"config": "BASE"}}, {}, "resumes 'b', which is not an earlier step"),
    ({"a": {"config": "BASE", "set": ["train.init_from={b}"]}, "b": {"config": "BASE"}}, {},
     "reads {b}, which is not an earlier step"),
    ({"a": {"config": "BASE"}, "b": {"resume": "a"}, "c": {"config": "BASE", "set": ["train.init_from={a}"]}}, {},
     "reads {a}, whose run step 'b' continues"),
    ({"a": {"config": "BASE"}, "b": {"resume": "a"}, "c": {"resume": "a"}}, {}, "both continue 'a'"),
    ({"a": {"config": "BASE", "set": ["train.init_from=checkpoints/drums_temporal"]}}, {},
     "reads train.init_from=checkpoints/drums_temporal, which no step of the recipe makes"),
    ({"a": {"config": "missing.yaml"}}, {}, "config missing.yaml does not exist"),
    ({"a": {"config": "BASE", "set": "train.lr=1"}}, {}, "'set' must be a list"),
    ({"a": {"config": "BASE"}}, {"targets": {"x": "b"}}, "target x names step 'b'"),
    ({"a": {"config": "BASE"}}, {"recipes": 1}, "may only have the keys"),
    ({"a": {"config": "BASE"}, "b": {"resume": "a", "set": ["train.lr=0.1"]}}, {}, "without raising train.max_steps"),
    ({"a": {"config": "BASE"}, "b": {"resume": "a", "set": ["train.max_steps=9000000"]}}, {"targets": {"x": "a"}},
     "target x names step 'a', whose run step 'b' continues"),
    ({"a": {"config": "BASE"}}, {"data": {"data/x": "python -m vaedemo.data.soundfont --out data/y"}},
     "must name that folder"),
])  # fmt: skip
def test_a_recipe_that_cannot_run_says_why_before_anything_trains(tmp_path, steps, extra, message):
    path = _recipe(tmp_path, steps, **extra)
    for smoke in (False, True):  # a smoke run's scaling hides none of it
        with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}").replace("(", r"\(")):
            Recipe(path, smoke=smoke)
    assert recipe_main([str(path), "--dry-run"]) == 2


def test_a_missing_data_folder_without_a_command_and_an_unknown_target_are_one_sentence(tmp_path, capsys):
    path = _recipe(tmp_path, {"a": {"config": "BASE", "set": [f"data.root={tmp_path / 'nowhere'}"]}}, targets={"x": "a"})
    assert recipe_main([str(path), "--target", "y"]) == 2
    assert "makes x, not y" in capsys.readouterr().err
    assert recipe_main([str(path)]) == 2
    assert f"data folder {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
    assert recipe_main([str(tmp_path), "--dry-run"]) == 2  # a folder for the recipe: not "does not exist"
    assert f"recipe {tmp_path} is a folder; give a recipe file" in capsys.readouterr().err


def test_a_recipe_without_targets_shows_and_runs_every_step(tmp_path, capsys):
    """No targets: every step is what the recipe asks for (not nothing, silently)."""
    nowhere = tmp_path / "nowhere"
    path = _recipe(tmp_path, {"a": {"config": "BASE", "set": [f"data.root={nowhere}"]}, "b": {"config": "BASE"}})
    assert recipe_main([str(path), "--dry-run"]) == 0
    assert [line.split(":")[0] for line in capsys.readouterr().out.splitlines()] == [
        f"data {nowhere} (to make)", "data data/drums (to make)", "a (to train)", "b (to train)"]  # (data/drums: the
    # default data.root, which b reads) the data first, as the run makes it
    assert recipe_main([str(path)]) == 2  # it goes on to make the steps' data, which it cannot here
    assert capsys.readouterr().err == f"error: data folder {nowhere} does not exist and {path} has no command that makes it.\n"


@pytest.mark.parametrize(("text", "message"), [
    ("steps: {a: {config: BASE}", "{path} is not valid YAML (while parsing a flow mapping)."),
    # YAML keeps the last of two equal keys: the first step named "a" was never run, without a word
    ("steps:\n  a: {config: BASE}\n  b: {resume: a}\n  a: {config: BASE}\n",
     "{path} is not valid YAML (the key 'a' is written twice in one mapping (line 4); YAML would keep only the last)."),
    ("data: [x]\nsteps: {a: {config: BASE}}", "'data' in {path} must map each data folder to the command line that makes it."),
    ("data: {data/x: [python, x, data/x]}\nsteps: {a: {config: BASE}}",
     "'data' in {path} must map each data folder to the command line that makes it."),
    ("targets: [a]\nsteps: {a: {config: BASE}}",
     "'targets' in {path} must map each bundle's name to the name of the step that makes it."),
    ("targets: {x: [a]}\nsteps: {a: {config: BASE}}",
     "'targets' in {path} must map each bundle's name to the name of the step that makes it."),
    ("runs: [a]\nsteps: {a: {config: BASE}}", "'runs' in {path} must be the folder the steps' runs go in, not ['a']."),
    ("steps: {1: {config: BASE}}", "{path} needs 'steps': a mapping of step names to a config (or a run to resume) each."),
    ("steps: {a: {config: 5}}", "step 'a' of {path}: 'config' must be the path of a config file, not 5."),
    ("steps: {a: {resume: null}}", "step 'a' of {path}: 'resume' must be the name of an earlier step, not None."),
    ("steps: {a: {config: BASE}, b: {resume: [a]}}",
     "step 'b' of {path}: 'resume' must be the name of an earlier step, not ['a']."),
    ('data: {data/x: "python -m x \\"unclosed data/x"}\nsteps: {a: {config: BASE}}',
     "the command for data folder data/x in {path} is not a command line (No closing quotation)."),
    ("data: {data/x: python -m x --out=data/x}\nsteps: {a: {config: BASE}}",  # named only inside an argument
     "the command for data folder data/x in {path} must name that folder (its output) as one of its arguments."),
])  # fmt: skip
def test_a_malformed_recipe_file_is_one_sentence(tmp_path, capsys, text, message):
    base = tmp_path / "base.yaml"
    base.write_text("name: base\n")
    path = tmp_path / "r.yaml"
    path.write_text(text.replace("BASE", str(base)))
    assert recipe_main([str(path), "--dry-run"]) == 2
    assert capsys.readouterr().err == f"error: {message.format(path=path)}\n"


@pytest.mark.parametrize(("command", "message"), [
    ("no-such-program-vaedemo --out DATA", "could not start (no-such-program-vaedemo: No such file or directory)."),
    ("true DATA", "finished without making it (it runs with DATA.partial in place of DATA, moved into place when whole)."),
])  # fmt: skip
def test_a_data_command_that_cannot_start_or_makes_nothing_is_one_sentence(tmp_path, capsys, command, message):
    data = tmp_path / "renders"
    command = command.replace("DATA", str(data))
    path = _recipe(tmp_path, {"a": {"config": "BASE", "set": [f"data.root={data}"]}}, data={str(data): command})
    assert recipe_main([str(path), "--dry-run"]) == 0  # (a dry run names the command it would run first)
    assert capsys.readouterr().out.splitlines()[0] == f"data {data} (to make): {command}"
    assert recipe_main([str(path)]) == 2
    expected = f"error: the command for data folder {data} in {path} {message.replace('DATA', str(data))}"
    assert capsys.readouterr().err.splitlines()[-1] == expected


@pytest.mark.parametrize("slash", ["", "/"])
def test_a_data_command_runs_this_python_and_writes_aside_only_where_it_names_the_folder(tmp_path, slash):
    """``python3`` is this interpreter too; an argument that merely contains the folder's name (a soundfont beside it)
    stays as it is, the one that is the folder becomes ROOT.partial (beside it, also when the folder is written with a
    trailing slash: "renders/.partial" inside it could not be moved into place, and every rerun then skipped it)."""
    data = tmp_path / "renders"
    script = ("import json, os, sys; os.mkdir(sys.argv[2]); "
              "json.dump([sys.executable, *sys.argv[1:]], open(sys.argv[2] + '/argv', 'w'))")
    command = shlex.join(["python3", "-c", script, f"{data}-kit.sf2", f"{data}{slash}"])
    path = _recipe(tmp_path, {"a": {"config": "BASE", "set": [f"data.root={data}{slash}"]}},
                   data={f"{data}{slash}": command})  # fmt: skip
    make_data(Recipe(path), ["a"])
    assert json.loads((data / "argv").read_text()) == [sys.executable, f"{data}-kit.sf2", f"{data}.partial"]


def test_a_dry_run_shows_a_step_the_run_refuses_for_its_stored_config(tmp_path, capsys):
    """A run folder of another config (here a finished one): the dry run names the key that the real run refuses on,
    rather than "(done)"."""
    runs = tmp_path / "runs"
    step = {"config": "BASE", "set": ["train.beta=0.02", "train.max_steps=10", f"data.root={tmp_path}"]}
    path = _recipe(tmp_path, {"a": step}, runs=str(runs), targets={"x": "a"})
    stored = Recipe(path).resolved("a").to_dict()
    stored["train"]["beta"] = 0.01
    (runs / "a" / "bundle").mkdir(parents=True)
    (runs / "a" / "config.yaml").write_text(yaml.safe_dump(stored))
    shutil.copy(ROOT / "checkpoints" / "drums_causal" / "config.json", runs / "a" / "bundle")  # a bundle of step 18500
    assert recipe_main([str(path), "--dry-run"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("a (refused, its run was trained with another config: train.beta: stored 0.01, recipe 0.02): ")
    assert recipe_main([str(path)]) == 2
    assert capsys.readouterr().err == (f"error: {runs / 'a'} was trained with another config than step 'a' of {path} gives "
                                       "(train.beta: stored 0.01, recipe 0.02); move it away to train that step again.\n")


def test_a_step_of_another_config_is_refused_before_any_step_trains(tmp_path, capsys):
    """The chain's second run holds a run of another config: refused at once, not after the first run has trained."""
    runs = tmp_path / "runs"
    common = ["train.max_steps=10", f"data.root={tmp_path}"]
    path = _recipe(tmp_path, {"a": {"config": "BASE", "set": common}, "b": {"config": "BASE", "set": ["train.beta=0.02",
                   *common]}}, runs=str(runs), targets={"x": "a", "y": "b"})  # fmt: skip
    stored = Recipe(path).resolved("b").to_dict()
    stored["train"]["beta"] = 0.01
    (runs / "b").mkdir(parents=True)
    (runs / "b" / "config.yaml").write_text(yaml.safe_dump(stored))
    assert recipe_main([str(path)]) == 2
    assert "was trained with another config than step 'b'" in capsys.readouterr().err
    assert not (runs / "a").exists()  # the first step never started
