import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import vaedemo
from vaedemo.bundle import save_bundle
from vaedemo.evaluate import main as evaluate_main
from vaedemo.nn.vae import AudioVAE


@pytest.mark.skipif(shutil.which("opusenc") is None, reason="opus-tools (opusenc/opusdec) not installed")
def test_evaluate_reports_model_opus_and_priors_and_updates_the_card(tiny_config, drum_folder, tmp_path, capfd):
    cfg = tiny_config("single", flows=2)
    torch.manual_seed(0)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    out = tmp_path / "report.md"
    js = tmp_path / "r.json"
    code = evaluate_main(["--checkpoint", str(path), "--data", str(drum_folder), "--seconds", "0.1", "--out", str(out),
                          "--json", str(js), "--update-card"])
    assert code == 0
    assert "Skipping chunk" not in capfd.readouterr().err  # opusenc's two lines a clip about a float WAV's chunks
    res = json.loads(js.read_text())[0]
    assert "validation split" in res["data"]  # the training folder: only held-out files
    rec = res["reconstruction"]
    assert set(rec) == {"model", "opus 6 kbps", "opus 12 kbps", "opus 24 kbps"}
    # a higher bitrate is a better codec: the baselines come out in the right order
    assert rec["opus 24 kbps"]["log_mel_l1"] < rec["opus 6 kbps"]["log_mel_l1"]
    assert rec["opus 24 kbps"]["si_sdr"] > rec["opus 6 kbps"]["si_sdr"]
    assert all({"level_db", "hop_buzz_db"} <= set(m) for m in rec.values())  # the diagnostics next to the distances
    assert rec["opus 24 kbps"]["audible_log_mel_l1"] < rec["opus 6 kbps"]["audible_log_mel_l1"]  # the heard part too
    assert abs(rec["opus 24 kbps"]["level_db"]) < 3.0  # a good codec keeps the level
    assert set(res["generation"]) == {"real vs real (floor)", "reconstructions (decoder bound)", "flow prior",
                                      "gaussian prior"}
    assert all({"kid", "kid_std", "fd"} <= set(v) for v in res["generation"].values())
    levels = res["generation"]["flow prior"]
    assert levels["min_peak_dbfs"] <= levels["median_peak_dbfs"] <= 0.0 + 40  # the samples' loudness is reported
    # each prior's row is the mean over five independent draws of samples, every draw's KID kept
    assert res["prior_draws"] == 5 and res["prior_seeds"] == [0, 1, 2, 3, 4]
    for prior in ("flow prior", "gaussian prior"):
        draws = res["generation"][prior]["kid_draws"]
        assert len(draws) == 5 and len(set(draws)) == 5  # other seeds, other samples
        assert res["generation"][prior]["kid"] == pytest.approx(np.mean(draws))
        assert res["generation"][prior]["kid_draw_std"] == pytest.approx(np.std(draws, ddof=1))
    assert "kid_draws" not in res["generation"]["real vs real (floor)"]  # one set of real clips: nothing to draw
    assert "real_peak_dbfs" in res["generation"]["real vs real (floor)"]
    report = out.read_text()
    assert "| opus 12 kbps |" in report and "| flow prior |" in report
    assert "the mean over 5 draws of samples (seeds 0, 1, 2, 3, 4; peak levels pooled" in report
    assert "| KID of each draw |" in report
    card = vaedemo.load(path).card
    assert "## Evaluation" in card and "python -m vaedemo.evaluate --checkpoint" in card
    assert "| log-mel L1, top 40 dB |" in card


def test_a_card_evaluated_before_the_top_40_db_distance_shows_a_dash():
    from vaedemo.card import report_markdown

    older = {"log_mel_l1": 0.5, "multi_resolution_stft": 1.2, "spectral_convergence": 0.6, "si_sdr": -3.0}
    result = {"data": "d", "clips": 2, "seconds": 1.0, "reconstruct_x_realtime": 50.0,
              "reconstruction": {"model": older, "opus 24 kbps": older | {"audible_log_mel_l1": 0.2}}, "generation": {}}
    text = report_markdown("old", [result])
    assert "| model | 0.500 | — | 1.200 |" in text and "| opus 24 kbps | 0.500 | 0.200 | 1.200 |" in text
    assert "Prior rows: one draw of samples." in text  # its seed was not recorded: none is claimed


def test_evaluate_errors_are_one_sentence(tiny_config, tmp_path, capsys):
    cfg = tiny_config("temporal", flows=0)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b")
    (tmp_path / "empty").mkdir()
    assert evaluate_main(["--checkpoint", str(path), "--data", str(tmp_path / "empty")]) == 2
    assert "holds no audio files" in capsys.readouterr().err
    assert evaluate_main(["--checkpoint", str(tmp_path / "nope"), "--data", str(tmp_path)]) == 2
    assert "not a bundle folder" in capsys.readouterr().err
    # a Hub bundle's folder is the Hugging Face cache's: the card is not written there
    assert evaluate_main(["--checkpoint", "hf://org/repo", "--data", str(tmp_path), "--update-card"]) == 2
    err = capsys.readouterr().err
    assert "--update-card writes into the bundle's folder, and hf://org/repo is a Hub id" in err
    assert "(hf download org/repo --local-dir DIR)" in err


def test_silent_clips_are_skipped_as_training_skips_them(tiny_config, tmp_path, capsys):
    """A folder of silent files scored SI-SDR -100 dB and a level of +200 dB and exited 0: its clips are skipped,
    as training's are, and nothing left is one sentence."""
    import soundfile as sf

    path = save_bundle(AudioVAE(tiny_config("temporal", flows=0).model), tmp_path / "b")
    (tmp_path / "silent").mkdir()
    for i in range(4):
        sf.write(tmp_path / "silent" / f"s{i}.wav", np.full(8000, 3e-5 * (i % 2), np.float32), 16000, subtype="FLOAT")
    assert evaluate_main(["--checkpoint", str(path), "--data", str(tmp_path / "silent"), "--no-opus"]) == 2
    err = capsys.readouterr().err
    assert "s1.wav: silent (no sample above -80 dBFS in its first" in err
    assert err.strip().endswith("gave 0 usable clips; the evaluation needs at least 2.")


def test_every_folder_with_more_files_than_clips_gets_a_disjoint_real_floor(tiny_config, drum_folder, tmp_path):
    """Another soundfont's folder: the evaluation clips are spread over it and the floor comes from its other files;
    the training folder keeps its split (validation clips vs training clips)."""
    from vaedemo.evaluate import evaluate_folder, evaluation_sets
    from vaedemo.inference import Engine

    cfg = tiny_config("single", flows=2)
    engine = Engine(save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict()))
    other = tmp_path / "other_soundfont"
    shutil.copytree(drum_folder, other)
    picked, floor, described = evaluation_sets(other, engine, 5)
    assert len(picked) == 5 and len(floor) == 7 and not set(picked) & set(floor) and "5 of 12 files" in described
    picked, floor, _ = evaluation_sets(other, engine, 50)
    assert len(picked) == 12 and floor == []  # nothing left over: no floor
    val, train, described = evaluation_sets(drum_folder, engine, 50)
    assert "validation split" in described and val and train and not set(val) & set(train)
    res = evaluate_folder(engine, other, 0.1, 5, 0, opus=False)
    assert res["clips"] == 5 and "real vs real (floor)" in res["generation"]


def test_the_training_folder_is_known_from_anywhere(tmp_path, monkeypatch):
    """A bundle records data.root as its training command gave it, often relative to the repository: evaluated from
    another folder, its training clips would have counted as unseen."""
    from vaedemo.evaluate import is_training_folder

    data = tmp_path / "repo" / "data" / "drums"
    data.mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo")
    assert is_training_folder(data, Path("data/drums"))
    monkeypatch.chdir(tmp_path)
    assert is_training_folder(data, Path("data/drums")) and is_training_folder(data, data)
    assert not is_training_folder(tmp_path / "repo" / "data", Path("data/drums"))
    assert not is_training_folder(data, Path("other/drums")) and not is_training_folder(data, tmp_path / "x" / "drums")
    assert not is_training_folder(data, Path("drums"))  # one part: any folder of that name would match


@pytest.mark.parametrize("mode, samples", [("single", 2048), ("temporal", 16000)])
def test_a_one_vector_model_is_evaluated_on_its_own_clip_and_a_time_series_on_1_s(tiny_config, drum_folder, tmp_path,
                                                                                     mode, samples):  # fmt: skip
    """Without --seconds: a clip longer than a one-vector model's would be decoded as two clips, the second of a few
    tail samples; a latent time series takes any length."""
    cfg = tiny_config(mode, flows=0)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    js = tmp_path / "r.json"
    assert evaluate_main(["--checkpoint", str(path), "--data", str(drum_folder), "--no-opus", "--max-clips", "2",
                          "--json", str(js)]) == 0  # fmt: skip
    res = json.loads(js.read_text())[0]
    assert round(res["seconds"] * 16000) == samples


def test_refine_adds_a_row_of_refined_reconstructions_and_their_speed(tiny_config, drum_folder, tmp_path, capsys):
    cfg = tiny_config("temporal", flows=0)
    torch.manual_seed(0)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    js, out = tmp_path / "r.json", tmp_path / "r.md"
    assert evaluate_main(["--checkpoint", str(path), "--data", str(drum_folder), "--no-opus", "--max-clips", "2",
                          "--refine", "2", "--json", str(js), "--out", str(out)]) == 0  # fmt: skip
    res = json.loads(js.read_text())[0]
    assert set(res["reconstruction"]) == {"model", "model, refined (2 steps)"}
    assert res["reconstruct_x_realtime_refined"] > 0
    assert "| model, refined (2 steps) |" in out.read_text() and "refined" in out.read_text().split("\n")[4]
    assert evaluate_main(["--checkpoint", str(path), "--data", str(drum_folder), "--refine", "-1"]) == 2
    assert "--refine must be from 0 to 1000 steps, got -1." in capsys.readouterr().err


def test_one_draw_of_prior_samples_and_a_seed_reproduce_the_draw_of_that_seed(tiny_config, drum_folder, tmp_path):
    """--draws 1 --seed d scores exactly draw d of --draws 5 --seed 0 (a draw is its seed's samples), and the five
    draws' peak levels are pooled: the lowest of all of them, not of one."""
    from vaedemo.evaluate import evaluate_folder
    from vaedemo.inference import Engine

    cfg = tiny_config("single", flows=2)
    torch.manual_seed(0)
    engine = Engine(save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict()))
    five = evaluate_folder(engine, drum_folder, 0.1, 6, 0, opus=False, draws=5)["generation"]["flow prior"]
    ones = [evaluate_folder(engine, drum_folder, 0.1, 6, 0, opus=False, seed=d, draws=1)["generation"]["flow prior"]
            for d in range(5)]  # fmt: skip
    assert [one["kid"] for one in ones] == five["kid_draws"] and all(one["kid_draw_std"] == 0.0 for one in ones)
    assert five["min_peak_dbfs"] == min(one["min_peak_dbfs"] for one in ones)
    assert len({one["min_peak_dbfs"] for one in ones}) > 1  # the draws' lowest peaks differ: the pooling is seen


def test_evaluate_refuses_no_draws_in_one_sentence(tiny_config, drum_folder, tmp_path, capsys):
    cfg = tiny_config("single", flows=2)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    args = ["--checkpoint", str(path), "--data", str(drum_folder), "--seconds", "0.1", "--no-opus", "--draws", "0"]
    assert evaluate_main(args) == 2
    assert "The priors need at least 1 draw of samples, got 0." in capsys.readouterr().err
    assert evaluate_main([*args[:-1], "1000000000"]) == 2  # (its seeds alone filled 24 GB)
    assert "--draws may be at most 100, got 1000000000." in capsys.readouterr().err


def test_a_report_never_replaces_a_file_of_the_folders_evaluated(tiny_config, drum_folder, tmp_path, capsys):
    """--json named one of the clips being evaluated, and the clip became JSON; a new file beside them is written."""
    cfg = tiny_config("single", flows=2)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    clip = sorted(p for p in drum_folder.rglob("*.wav"))[0]
    before = clip.read_bytes()
    args = ["--checkpoint", str(path), "--data", str(drum_folder), "--seconds", "0.1", "--no-opus", "--draws", "1"]
    assert evaluate_main([*args, "--json", str(clip)]) == 2
    assert f"--json {clip} would replace a file of {drum_folder.resolve()}, which this command reads" in \
        capsys.readouterr().err  # fmt: skip
    assert clip.read_bytes() == before
    from vaedemo.cli import check_outputs

    check_outputs([str(drum_folder)], out=str(drum_folder / "report.md"))  # a new file there replaces nothing


def test_scores_over_draws_average_every_number_and_keep_each_draws_kid():
    from vaedemo.evaluate import scores_over_draws

    def score(real, fake):
        return {"kid": float(fake.mean()), "fd": 2.0 * float(fake.mean())}

    out = scores_over_draws(np.zeros(3), [np.full(4, 1.0), np.full(4, 2.0), np.full(4, 6.0)], score)
    assert out["kid"] == 3.0 and out["fd"] == 6.0 and out["kid_draws"] == [1.0, 2.0, 6.0]
    assert out["kid_draw_std"] == pytest.approx(np.sqrt(7.0))  # ddof 1: ((2^2 + 1^2 + 3^2) / 2) ** 0.5


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--max-clips", "-1"], "--max-clips must be at least 2 (KID and FD compare sets of clips), got -1."),
        (["--samples", "1"], "--samples must be 0 (as many as clips) or at least 2, got 1."),
        (["--samples", "-3"], "--samples must be 0 (as many as clips) or at least 2, got -3."),
        (["--seconds", "-1"], "--seconds must be a length above 0, got -1.0."),
        (["--seconds", "nan"], "--seconds must be a length above 0, got nan."),
        (["--seconds", "1e9", "--max-clips", "2"], "--seconds is at most 165 for this model (each metric holds"),
        (["--seconds", "59", "--max-clips", "200"], "200 clips of 59 s are more audio than one evaluation holds"),
        (["--json", "{tmp}"], "--json {tmp} is a folder; give a file name."),
        (["--json", "{tmp}/missing/r.json"], "--json {tmp}/missing/r.json: the folder {tmp}/missing does not exist."),
        (["--out", "{tmp}/r.txt", "--json", "{tmp}/r.txt"], "--json and --out name the same file {tmp}/r.txt"),
        (["--json", "{tmp}/b/config.json"], "--json {tmp}/b/config.json would replace a file of the model in {tmp}/b;"),
        (["--out", "{tmp}/b/README.md"], "--out {tmp}/b/README.md would replace a file of the model in {tmp}/b;"),
    ],
)  # fmt: skip
def test_odd_arguments_and_outputs_are_one_sentence_before_any_work(tiny_config, drum_folder, tmp_path, capsys, extra,
                                                                    message):  # fmt: skip
    """Each was a traceback (numpy's, the metrics', IsADirectoryError after the whole evaluation, a 16 GiB allocation),
    or, for --out and --json on one file, the markdown silently replaced by the JSON."""
    cfg = tiny_config("single", flows=0)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    assert evaluate_main(["--checkpoint", str(path), "--data", str(drum_folder), "--no-opus", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: " + message.replace("{tmp}", str(tmp_path))) and err.count("\n") == 1
    assert not (tmp_path / "r.txt").exists()
    assert json.loads((path / "config.json").read_text())["format"] == "vaedemo-bundle"  # the bundle is untouched


def test_an_output_through_a_link_is_checked_as_its_target(tiny_config, drum_folder, tmp_path, capsys):
    """Written through a link, a file is its target: a link to a bundle's config replaced the config, and a link
    beside its target passed as a second file."""
    cfg = tiny_config("single", flows=0)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    (tmp_path / "report.json").symlink_to(path / "config.json")
    (tmp_path / "same.md").symlink_to(tmp_path / "r.md")
    base = ["--checkpoint", str(path), "--data", str(drum_folder), "--no-opus"]
    assert evaluate_main([*base, "--json", str(tmp_path / "report.json")]) == 2
    assert f"--json {tmp_path}/report.json would replace a file of the model in {path};" in capsys.readouterr().err
    assert evaluate_main([*base, "--out", str(tmp_path / "r.md"), "--json", str(tmp_path / "same.md")]) == 2
    assert f"--json and --out name the same file {tmp_path}/same.md" in capsys.readouterr().err
    assert json.loads((path / "config.json").read_text())["format"] == "vaedemo-bundle"  # the bundle is untouched


def test_two_outputs_to_one_terminal_are_two_streams_not_one_file(tmp_path):
    """--out /dev/stdout --json /dev/stderr at a terminal lead to one device: each is written as it is (appended, not
    replaced), so they are not one file named twice."""
    from vaedemo.cli import check_outputs

    main_side, terminal = os.openpty()
    try:
        (tmp_path / "stdout").symlink_to(os.ttyname(terminal))
        (tmp_path / "stderr").symlink_to(os.ttyname(terminal))
        check_outputs(out=str(tmp_path / "stdout"), json_path=str(tmp_path / "stderr"))
    finally:
        os.close(main_side)
        os.close(terminal)


def test_a_short_clip_gives_no_nan_and_a_folder_used_whole_shows_its_level(tiny_config, drum_folder, tmp_path):
    """Clips too short for the frame buzz wrote NaN into --json (and the card's config.json), which JSON readers
    refuse; a folder used whole (no floor row) kept its held-out clips' level out of the markdown."""
    cfg = tiny_config("temporal", flows=0)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    other = tmp_path / "other_soundfont"
    shutil.copytree(drum_folder, other)
    js, out = tmp_path / "r.json", tmp_path / "r.md"
    assert evaluate_main(["--checkpoint", str(path), "--data", str(other), "--no-opus", "--seconds", "0.002",
                          "--json", str(js), "--out", str(out)]) == 0  # fmt: skip

    def refuse(constant):
        raise AssertionError(f"{constant} in the JSON")

    res = json.loads(js.read_text(), parse_constant=refuse)[0]
    assert "hop_buzz_db" not in res["reconstruction"]["model"] and "| — |" in out.read_text()
    assert "real vs real (floor)" not in res["generation"]  # all 12 files evaluated: none left for a floor
    held = res["generation"]["reconstructions (decoder bound)"]["real_peak_dbfs"]
    assert f"(held-out clips: {held:.1f})" in out.read_text()


def test_one_file_left_over_makes_no_floor_and_samples_are_as_long_as_the_clips(tiny_config, drum_folder, tmp_path,
                                                                                monkeypatch):  # fmt: skip
    """11 of 12 files left one for the floor: KID of one clip was a traceback after the reconstructions. A one-vector
    model's samples are one clip whatever --seconds asks: they are zero-padded to it as the clips are (features of
    short samples against long, half-silent clips made the priors' KID a hundred times worse)."""
    from vaedemo import metrics
    from vaedemo.evaluate import evaluate_folder
    from vaedemo.inference import Engine

    cfg = tiny_config("single", flows=2)
    engine = Engine(save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict()))
    other = tmp_path / "other_soundfont"
    shutil.copytree(drum_folder, other)
    lengths = set()
    features = metrics.clip_features
    monkeypatch.setattr(metrics, "clip_features", lambda clips, sr: lengths.update(len(c) for c in clips)
                        or features(clips, sr))  # fmt: skip
    seconds = 3 * engine.clip_length / engine.sample_rate
    res = evaluate_folder(engine, other, seconds, 11, 0, opus=False, draws=1)
    assert "real vs real (floor)" not in res["generation"] and "the floor's" not in res["data"]
    assert lengths == {3 * engine.clip_length}


def test_a_report_goes_into_a_pipe_or_device_it_names_rather_than_replacing_it(tmp_path, capsys):
    """--out /dev/stdout (a link to /proc/self/fd/1) or bash's --json >(jq .) (/dev/fd/N): the report is written into
    it, as before; written aside and renamed over the path, it replaced the link (as root: /dev/stdout itself became a
    regular file) or failed with "No such file or directory" (nothing can be created in /dev/fd)."""
    import os
    import threading

    from vaedemo.cli import check_outputs, emit_report

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "stdout"  # as /dev/stdout links to /proc/self/fd/1
    link.symlink_to(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    check_outputs(out=str(link))
    emit_report("# report", {"a": 1}, str(link), None)
    reader.join(timeout=10)
    assert got == ["# report"] and link.is_symlink() and fifo.is_fifo()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing left aside


def test_a_report_through_a_link_replaces_the_file_it_names_and_keeps_the_link(tmp_path):
    from vaedemo.cli import emit_report

    (tmp_path / "runs").mkdir()
    target = tmp_path / "runs" / "run7.json"
    target.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    emit_report("# report", {"a": 1}, None, str(link))
    assert link.is_symlink() and json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["latest.json", "run7.json", "runs"]  # nothing aside


def test_a_seed_out_of_range_and_an_unreadable_training_data_section_are_one_sentence(tiny_config, drum_folder,
                                                                                      tmp_path, capsys):  # fmt: skip
    """A seed past 2**64 was an overflow traceback after the whole reconstruction pass; a bundle (a stranger's) whose
    training.data is not a mapping a TypeError."""
    cfg = tiny_config("single", flows=2)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    args = ["--checkpoint", str(path), "--data", str(drum_folder), "--seconds", "0.1", "--no-opus"]
    for seed in (str(2**64), "-1"):
        assert evaluate_main([*args, "--seed", seed]) == 2
        assert f"--seed must be a whole number from 0 to 2**63 - 1, got {seed}." in capsys.readouterr().err
    doc = json.loads((path / "config.json").read_text())
    for data, says in [([1, 2], "has a data section that is not a mapping"), ({"root": 5}, "cannot read")]:
        doc["training"]["data"] = data
        (path / "config.json").write_text(json.dumps(doc))
        assert evaluate_main(args) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err


def test_a_card_update_a_bundle_folder_refuses_is_refused_before_the_evaluation(tiny_config, drum_folder, tmp_path,
                                                                                capsys, monkeypatch):  # fmt: skip
    """It was refused when the card was written, after minutes of evaluation."""
    import vaedemo.evaluate as ev

    cfg = tiny_config("single", flows=2)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    (path / ".git").mkdir()
    monkeypatch.setattr(ev, "evaluate_folder", lambda *a, **k: pytest.fail("evaluated before refusing"))
    assert evaluate_main(["--checkpoint", str(path), "--data", str(drum_folder), "--update-card"]) == 2
    assert "holds .git besides the bundle's files" in capsys.readouterr().err


def test_a_codec_that_fails_says_so_with_what_it_printed():
    """opusenc and opusdec run with their output held back (two lines a clip of noise about a float WAV's chunks);
    where one fails, what it printed is in the sentence."""
    from vaedemo.errors import VaedemoError
    from vaedemo.evaluate import _codec

    _codec(["sh", "-c", "echo 'Skipping chunk of type \"fact\"' >&2"])  # (succeeds: nothing to show)
    with pytest.raises(VaedemoError, match=r"^sh failed \(exit 3\): no such file$"):
        _codec(["sh", "-c", "echo 'no such file' >&2; exit 3"])
