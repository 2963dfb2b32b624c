"""The stable API through gradio_client: /reconstruct, /sample, /interpolate against a live server."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


@pytest.fixture(scope="module")
def upload(tmp_path_factory):
    """1.3 s of stereo noise bursts at 22.05 kHz (neither the model's rate nor its channel count)."""
    path = tmp_path_factory.mktemp("upload") / "burst.wav"
    rng = np.random.default_rng(0)
    x = 0.2 * rng.standard_normal((28665, 2)) * np.exp(-np.arange(28665) / 4000)[:, None]
    sf.write(path, x.astype(np.float32), 22050, subtype="PCM_16")
    return path


def test_api_lists_the_three_endpoints(client):
    names = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/reconstruct", "/sample", "/interpolate"} <= set(names)


@pytest.mark.parametrize("model", ["tiny_single_flow", "tiny_temporal"])
def test_reconstruct_keeps_rate_length_and_channels(client, upload, model):
    out, metrics = client.predict(handle_file(str(upload)), model, api_name="/reconstruct")
    info = sf.info(out)
    assert (info.samplerate, info.frames, info.channels) == (22050, 28665, 2)
    assert set(metrics) == {"log_mel_l1", "audible_log_mel_l1", "multi_resolution_stft", "spectral_convergence", "si_sdr",
                            "trimmed",
                            "seconds_used", "seconds_in_file", "refine_steps", "refine_note", "hits"}  # fmt: skip
    assert (metrics["trimmed"], metrics["seconds_used"], metrics["seconds_in_file"]) == (False, 1.3, 1.3)
    assert metrics["refine_steps"] == 0  # refine defaults to off: the two-argument call of earlier clients
    searched, refined = client.predict(audio=handle_file(str(upload)), model=model, refine=True,
                                       api_name="/reconstruct")  # fmt: skip
    assert sf.info(searched).frames == 28665
    # 1.3 s is several of the tiny one-shot model's clips (0.37 s): reconstructed hit by hit, in one pass
    assert (refined["refine_steps"] > 0) == (model == "tiny_temporal")
    assert ("reconstructed hit by hit in one pass" in refined["refine_note"]) == (model != "tiny_temporal")
    assert metrics["refine_note"] == ""  # not asked for: nothing to explain


def test_sample_returns_n_clips_at_the_model_rate(client):
    files = client.predict(n=3, temperature=0.8, seed=7, use_flow=True, api_name="/sample")
    assert len(files) == 3
    for f in files:
        info = sf.info(f)
        assert (info.samplerate, info.frames, info.channels) == (44100, 16384, 1)
    again = client.predict(3, 0.8, 7, True, api_name="/sample")
    # same seed, same sound: equal up to one step of the 16-bit file (float rounding in the convolutions can differ
    # between two calls and flip a sample that lies on a rounding boundary: 11 of 16384 samples, seen on one machine)
    a, b = sf.read(files[0])[0], sf.read(again[0])[0]
    assert np.abs(a - b).max() <= 1 / 32768 and np.mean(a != b) < 0.01


def test_interpolate_returns_the_path(client, upload):
    kick = "examples/timgm6mb-standard_kick.flac"
    files = client.predict(audio=handle_file(str(upload)), audio_b=handle_file(kick), steps=4, method="lerp",
                           api_name="/interpolate")  # keywords, as in the README
    assert len(files) == 4
    assert all((sf.info(f).samplerate, sf.info(f).frames) == (44100, 16384) for f in files)
    temporal = client.predict(handle_file(str(upload)), handle_file(kick), 3, "slerp", "tiny_temporal",
                              api_name="/interpolate")  # fmt: skip
    # frame by frame, cut to the shorter trajectory: the kick (0.8 s) is shorter than the upload (1.3 s)
    assert len(temporal) == 3 and sf.info(temporal[0]).frames == -(-int(0.8 * 44100) // 512) * 512
    searched = client.predict(handle_file(str(upload)), handle_file(kick), 3, "slerp", "tiny_temporal", True,
                              api_name="/interpolate")  # refine: from the sources' searched latents  # fmt: skip
    assert len(searched) == 3 and not np.array_equal(sf.read(searched[0])[0], sf.read(temporal[0])[0])


def test_eight_concurrent_reconstructions_all_succeed(server, upload):
    # four users (addresses as a trusted proxy forwards them) with two requests each: within the per-client limit
    users = [Client(server, verbose=False, headers={"X-Forwarded-For": f"198.51.100.{i + 1}"}) for i in range(4)]
    with ThreadPoolExecutor(8) as pool:
        jobs = [pool.submit(u.predict, handle_file(str(upload)), api_name="/reconstruct") for u in users * 2]
        results = [j.result(timeout=120) for j in jobs]
    assert len({out for out, _ in results}) == 8  # every request got its own file
    assert all(sf.info(out).frames == 28665 for out, _ in results)


def test_a_bad_upload_is_one_sentence_and_the_server_keeps_serving(client, tmp_path, upload):
    bad = tmp_path / "notes.wav"
    bad.write_text("these are not samples\n" * 20)
    with pytest.raises(AppError, match=r"notes.wav could not be decoded as audio"):
        client.predict(handle_file(str(bad)), api_name="/reconstruct")
    with pytest.raises(AppError, match="number of samples must be between 1 and 8"):
        client.predict(50, api_name="/sample")
    out, _ = client.predict(handle_file(str(upload)), api_name="/reconstruct")
    assert sf.info(out).frames == 28665
