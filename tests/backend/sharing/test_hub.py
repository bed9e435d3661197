"""Push to the Hub without a network: no token, bad names, offline mode, an unreachable host, refused tokens.

The happy path runs against a fake HfApi that records what it was asked to do (this machine
cannot reach huggingface.co); the failure paths run the real huggingface_hub client.
"""

from __future__ import annotations

import time
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import constants

from backend.errors import UserError
from backend.sharing.hub import push_model
from tests.backend.export_fixtures import record_run

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused at once


class FakeHfApi:
    """Records calls in order; `upload_folder` also records the staged files and the README."""

    calls: list[tuple] = []
    fail_with: Exception | None = None

    def __init__(self, endpoint=None, token=None):
        FakeHfApi.calls.append(("init", endpoint, token))

    def create_repo(self, repo_id, **kwargs):
        FakeHfApi.calls.append(("create_repo", repo_id, kwargs))
        if FakeHfApi.fail_with is not None:
            raise FakeHfApi.fail_with
        prefix = "spaces/" if kwargs.get("repo_type") == "space" else ""
        return f"https://hub.example/{prefix}{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, repo_type, commit_message):
        folder = Path(folder_path)
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        FakeHfApi.calls.append(("upload_folder", repo_id, repo_type, files, (folder / "README.md").read_text()))


@pytest.fixture
def fake_hub(monkeypatch):
    FakeHfApi.calls, FakeHfApi.fail_with = [], None
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    return FakeHfApi


@pytest.fixture
def run(repo, settings):
    return record_run(repo, settings.runs_dir, "lstm")


def test_push_model_uploads_a_complete_folder_after_creating_the_repo(run, fake_hub):
    result = push_model(run, "alice/spam-filter", "hf_secret", private=True, endpoint="https://hub.example")
    assert [call[0] for call in fake_hub.calls] == ["init", "create_repo", "upload_folder"]
    assert fake_hub.calls[0][1:] == ("https://hub.example", "hf_secret")
    assert fake_hub.calls[1][2]["repo_type"] == "model" and fake_hub.calls[1][2]["private"] is True
    _, repo_id, repo_type, files, readme = fake_hub.calls[2]
    assert (repo_id, repo_type) == ("alice/spam-filter", "model")
    assert files == result.files and {"model.safetensors", "config.json", "tokenizer.json", "README.md",
                                      "run_config.json"} <= set(files)
    assert readme.startswith("---") and "text-classification" in readme  # the model card
    assert result.url == "https://hub.example/alice/spam-filter" and result.kind == "model"


def test_push_space_uploads_the_demo_app(run, fake_hub):
    result = push_model(run, "alice/spam-demo", "hf_secret", kind="space")
    create, upload = fake_hub.calls[1], fake_hub.calls[2]
    assert create[2]["repo_type"] == "space" and create[2]["space_sdk"] == "gradio"
    assert {"app.py", "text_model.py", "requirements.txt", "space.json", "model/model.safetensors"} <= set(upload[3])
    assert "sdk: gradio" in upload[4] and "app_file: app.py" in upload[4]
    assert result.url.endswith("spaces/alice/spam-demo")


@pytest.mark.parametrize("token", [None, "", "   "])
def test_no_token_is_refused_before_any_network_call(token, run, fake_hub):
    with pytest.raises(UserError, match="access token is needed"):
        push_model(run, "alice/spam-filter", token)
    assert fake_hub.calls == []


@pytest.mark.parametrize("repo_id", ["", "spam-filter", "alice/spam filter", "a/b/c", "alice/--x..y"])
def test_bad_repository_names_are_refused_before_any_network_call(repo_id, run, fake_hub):
    with pytest.raises(UserError, match="not a repository name"):
        push_model(run, repo_id, "hf_secret")
    assert fake_hub.calls == []


def test_unknown_kind_and_runs_without_a_model_are_refused(run, repo, fake_hub):
    with pytest.raises(UserError, match="unknown"):
        push_model(run, "alice/x", "hf_secret", kind="dataset")
    repo.requeue(run.id)
    with pytest.raises(UserError, match="only a succeeded run"):
        push_model(repo.get_run(run.id), "alice/x", "hf_secret")
    assert fake_hub.calls == []


def test_offline_mode_says_so(run, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="HF_HUB_OFFLINE"):
        push_model(run, "alice/spam-filter", "hf_secret", endpoint=UNREACHABLE)


@pytest.mark.parametrize("kind", ["model", "space"])
def test_an_unreachable_hub_names_the_host(kind, run, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", UNREACHABLE)  # read at call time, like a person's environment
    started = time.monotonic()
    with pytest.raises(UserError, match="Could not reach 127.0.0.1:9") as error:
        push_model(run, "alice/spam-filter", "hf_secret", kind=kind)
    assert "connection" in str(error.value) and "Traceback" not in str(error.value)
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("status, message", [(401, "refused the token"), (403, "may not write"),
                                             (500, "answered 500")])
def test_hub_http_errors_are_explained(status, message, run, fake_hub):
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    response = httpx2.Response(status, request=httpx2.Request("POST", "https://hub.example/api/repos/create"))
    fake_hub.fail_with = HfHubHTTPError("boom", response=response, server_message="Invalid credentials")
    with pytest.raises(UserError, match=message):
        push_model(run, "alice/spam-filter", "hf_secret", endpoint="https://hub.example")
    assert [call[0] for call in fake_hub.calls] == ["init", "create_repo"]  # nothing uploaded
