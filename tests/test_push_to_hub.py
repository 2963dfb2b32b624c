"""Uploading a bundle: what would not load back is refused before any network, a failed upload is one line."""

from __future__ import annotations

import huggingface_hub
import huggingface_hub.constants as constants

from vaedemo.bundle import save_bundle
from vaedemo.nn.vae import AudioVAE
from vaedemo.push_to_hub import main


def test_a_folder_that_is_not_a_bundle_is_refused_before_any_upload(tmp_path, capsys, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", no_network)
    (tmp_path / "notes").mkdir()
    assert main([str(tmp_path / "notes"), "org/repo"]) == 2
    assert "holds no config.json, so it is not a vaedemo bundle." in capsys.readouterr().err
    assert main([str(tmp_path / "notes"), "not a repo!!"]) == 2  # (an upload's failure, exit 1, after the bundle)
    assert "error: 'not a repo!!' is not a Hub repo id: org/name" in capsys.readouterr().err
    # a Hub id is no folder of files to upload: named as given (as a path it read "hf:/org/src", not a bundle folder)
    assert main(["hf://org/src", "org/repo"]) == 2
    assert ("error: python -m vaedemo.push_to_hub uploads the files of a bundle folder, and hf://org/src is a Hub id: "
            "download it to a folder (hf download org/src --local-dir DIR)") in capsys.readouterr().err


def test_a_failed_upload_is_one_line_whatever_the_error_says(tiny_config, tmp_path, capsys, monkeypatch):
    cfg = tiny_config("temporal", flows=0)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: refused at once
    assert main([str(path), "org/repo", "--token", "hf_x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the upload to org/repo failed (") and err.count("\n") == 1

    def silent_timeout(*args, **kwargs):
        raise TimeoutError()  # no message at all

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", silent_timeout)
    assert main([str(path), "org/repo", "--token", "hf_x"]) == 1
    assert capsys.readouterr().err == "error: the upload to org/repo failed (TimeoutError: ).\n"


def test_a_server_that_never_answers_fails_the_upload_after_the_timeout(tiny_config, tmp_path, capsys, monkeypatch):
    """huggingface_hub's client waits without a timeout: a stalled proxy held the command forever."""
    import socket
    import threading
    import time

    import vaedemo.push_to_hub as push

    cfg = tiny_config("temporal", flows=0)
    path = save_bundle(AudioVAE(cfg.model), tmp_path / "b", {"name": "tiny"}, cfg.to_dict())
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(50)  # connections are taken (the kernel's backlog) and never answered
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
    monkeypatch.setattr(push, "UPLOAD_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    codes: list[int] = []
    upload = threading.Thread(target=lambda: codes.append(main([str(path), "org/repo", "--token", "hf_x"])), daemon=True)
    start = time.monotonic()
    upload.start()
    upload.join(timeout=60)  # (without a timeout it would never end)
    silent.close()
    assert codes == [1] and time.monotonic() - start < 60 and "Timeout" in capsys.readouterr().err
    # the process's client is as it was: the timeout was the command's own
    assert huggingface_hub.utils._http._GLOBAL_CLIENT_FACTORY is huggingface_hub.utils._http.default_client_factory
