import csv

import pytest
import yaml
from conftest import TINY

from vaedemo.errors import ConfigError
from vaedemo.experiment import main as experiment_main
from vaedemo.experiment import read_ablation


def test_ablation_trains_reuses_and_tabulates(drum_folder, tmp_path, capsys):
    base = tmp_path / "base.yaml"
    values: dict = {}
    for item in TINY + [f"data.root={drum_folder}", "model.latent_mode=single", "model.posterior_flow_layers=2",
                        "model.prior_flow_layers=2"]:
        key, raw = item.split("=", 1)
        node = values
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = yaml.safe_load(raw)
    base.write_text(yaml.safe_dump(values))
    abl = tmp_path / "abl.yaml"
    abl.write_text(yaml.safe_dump({
        "base": str(base),
        "run_root": str(tmp_path / "runs"),
        "shared": ["train.max_steps=2", "train.vae_steps=2", "train.val_every_n_steps=2"],
        "evaluate": {"data": [str(drum_folder)], "seconds": 0.1, "max_clips": 4},
        "variants": {"no_flows": ["model.posterior_flow_layers=0", "model.prior_flow_layers=0"], "both_flows": []},
    }, sort_keys=False))
    out = tmp_path / "docs" / "abl.md"
    assert experiment_main([str(abl), "--out", str(out)]) == 0
    rows = list(csv.DictReader((tmp_path / "runs" / "results.csv").read_text().splitlines()))
    assert [r["variant"] for r in rows] == ["no_flows", "both_flows"]
    assert rows[0]["prior flow"] == "0" and rows[1]["prior flow"] == "2"
    assert float(rows[1]["params (M)"]) > float(rows[0]["params (M)"])
    assert all(r["steps"] == "2" for r in rows)
    assert f"{drum_folder.name} log-mel L1" in rows[0]
    assert "| both_flows |" in out.read_text()
    # a second call reuses the finished runs instead of training again
    capsys.readouterr()
    assert experiment_main([str(abl), "--only", "both_flows"]) == 0
    assert "both_flows: reusing" in capsys.readouterr().err
    # a variant edited since it trained is not reused (the table would name the old one): one sentence
    doc = yaml.safe_load(abl.read_text())
    doc["variants"]["both_flows"] = ["model.prior_flow_layers=1"]
    abl.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert experiment_main([str(abl), "--only", "both_flows"]) == 2
    assert "holds a run of another config (model.prior_flow_layers: stored 2, now 1)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("base: x.yaml\nvariantz: {}\n", "unknown key 'variantz'"),
        ("base: [x.yaml\n", "is not valid YAML"),
        ("base: x.yaml\nvariants: {a: []}\nvariants: {b: []}\n", "the key 'variants' is written twice .*line 3"),
        ("- base\n", "must map the keys base, description, evaluate, run_root, shared, variants to their values"),
        ("base: x.yaml\n", "needs a 'variants' entry"),
        # the evaluation's options are read before the first variant trains, not after it
        ("base: x.yaml\nvariants: {a: []}\nevaluate: {data: [d], draws: 0}\n",
         "evaluate.draws in .* must be a whole number of at least 1, got 0."),
        ("base: x.yaml\nvariants: {a: []}\nevaluate: {data: [d], max_clip: 5}\n", "unknown evaluate option 'max_clip'"),
        ("base: x.yaml\nvariants: {a: []}\nevaluate: [d]\n", "'evaluate' in .* must map options to values"),
        # read before training too: int() / float()'s tracebacks after the first variant, a folder read letter by
        # letter, "no" taken for true
        ("base: x.yaml\nvariants: {a: []}\nevaluate: {data: [d], max_clips: many}\n",
         "evaluate.max_clips in .* must be a whole number, at least 2, got 'many'."),
        ("base: x.yaml\nvariants: {a: []}\nevaluate: {data: [d], samples: 1}\n",
         "evaluate.samples in .* must be a whole number, 0 or at least 2, got 1."),
        ("base: x.yaml\nvariants: {a: []}\nevaluate: {data: [d], seconds: -1}\n",
         "evaluate.seconds in .* must be a length above 0, got -1."),
        ("base: x.yaml\nvariants: {a: []}\nevaluate: {data: data/drums}\n",
         "evaluate.data in .* must be a list of folders, got 'data/drums'."),
        ("base: x.yaml\nvariants: {a: []}\nevaluate: {data: [d], opus: 'no'}\n",
         "evaluate.opus in .* must be true or false, got 'no'."),
        # the entries' types: each was a TypeError at its variant's turn (a string read letter by letter)
        ("base: x.yaml\nvariants: {a: 5}\n", "variant 'a' in .* must be a name with a list of key=value overrides, got 5."),
        ("base: x.yaml\nvariants: {a: train.beta=1}\n", "variant 'a' .* got 'train.beta=1'."),
        ("base: x.yaml\nvariants: {a: [7]}\n", "variant 'a' .* got \\[7\\]."),
        ("base: x.yaml\nvariants: {a: []}\nshared: 7\n", "'shared' in .* must be a list of key=value overrides, got 7."),
        ("base: 5\nvariants: {a: []}\n", "'base' in .* must be a path, got 5."),
        ("base: x.yaml\nvariants: {a: []}\nrun_root: [1, 2]\n", "'run_root' in .* must be a path, got \\[1, 2\\]."),
    ],
)  # fmt: skip
def test_ablation_file_errors(tmp_path, text, message):
    p = tmp_path / "a.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_ablation(p)


def test_a_missing_ablation_file_is_one_sentence(tmp_path):
    assert experiment_main([str(tmp_path / "missing.yaml")]) == 2


def test_the_table_file_and_the_evaluation_folders_are_checked_before_any_variant_trains(tmp_path, capsys):
    """--out naming a folder was an IsADirectoryError after every variant had trained and been evaluated; a missing
    evaluation folder was said after the first variant had trained."""
    p = tmp_path / "a.yaml"
    p.write_text(f"base: x.yaml\nvariants: {{a: []}}\nrun_root: {tmp_path / 'runs'}\n")
    assert experiment_main([str(p), "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a folder; give a file name." in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert experiment_main([str(p), "--out", str(tmp_path / "afile" / "x" / "t.md")]) == 2  # NotADirectoryError
    assert "its folder cannot be made" in capsys.readouterr().err
    p.write_text(f"base: x.yaml\nvariants: {{a: []}}\nrun_root: {tmp_path / 'runs'}\nevaluate: {{data: [nowhere]}}\n")
    assert experiment_main([str(p)]) == 2
    assert "evaluate.data in" in capsys.readouterr().err and not (tmp_path / "runs").exists()
    p.write_text(f"base: x.yaml\nvariants: {{a: [], b: []}}\nrun_root: {tmp_path / 'runs'}\n")
    assert experiment_main([str(p), "--only", "a", "--only", "c"]) == 2  # a typo after a good name
    assert "no variant 'c' in" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_a_variant_is_evaluated_at_evaluates_own_default_length(tiny_config, drum_folder, tmp_path):
    """Without evaluate.seconds a one-vector model was evaluated on 1 s, its clip and a few samples more (decoded as
    a second clip): worse numbers than python -m vaedemo.evaluate gives the same bundle."""
    from vaedemo.bundle import save_bundle
    from vaedemo.experiment import evaluate_variant
    from vaedemo.nn.vae import AudioVAE

    cfg = tiny_config("single", flows=0)
    bundle = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    (result,) = evaluate_variant(bundle, {"data": [str(drum_folder)], "max_clips": 2, "draws": 1})
    assert round(result["seconds"] * 16000) == 2048  # the model's clip, as evaluate's default
