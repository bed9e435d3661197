"""Space export: the files a Hugging Face Space needs, and the demo itself answering like the app does.

The live tests launch the exported app.py in a subprocess, from the Space folder alone (no
Modelsmith on its path, HF_HUB_OFFLINE=1, a free port on 127.0.0.1), and call it with gradio_client.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from backend.errors import UserError
from backend.sharing.space import REQUIREMENTS, export_space, gradio_version
from tests.backend.export_fixtures import record_run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # starts exported Spaces as processes

TEXTS = ["a good movie with friends", "bad food in town", "good bad"]
PROMPTS = ["the cat", ""]
START_TIMEOUT_S = 180


def _front_matter(readme: str) -> dict[str, str]:
    assert readme.startswith("---\n")
    block = readme[4:readme.index("\n---", 4)]
    return {key.strip(): value.strip() for key, value in
            (line.split(":", 1) for line in block.splitlines() if ":" in line and not line.startswith("-"))}


def test_space_folder_has_app_requirements_metadata_and_model(repo, settings, tmp_path):
    run = record_run(repo, settings.runs_dir, "lstm", name="Spam: filter")
    result = export_space(run, tmp_path / "space", title="Spam: filter \"v1\"", emoji="📨",
                          color_from="green", color_to="purple")
    space = result.path
    assert space == tmp_path / "space" and result.format == "space"
    assert sorted(str(p.relative_to(space)) for p in space.rglob("*") if p.is_file()) == result.files
    for name in ("app.py", "text_model.py", "requirements.txt", "README.md", "space.json", "model/model.safetensors",
                 "model/config.json", "model/tokenizer.json", "model/README.md", "model/run_config.json"):
        assert (space / name).is_file(), name
    meta = _front_matter((space / "README.md").read_text(encoding="utf-8"))
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["sdk_version"] == gradio_version()
    assert json.loads(meta["title"]) == 'Spam: filter "v1"'  # quoted: the colon cannot break the YAML
    assert (meta["emoji"], meta["colorFrom"], meta["colorTo"]) == ("📨", "green", "purple")
    requirements = (space / "requirements.txt").read_text().split()
    assert requirements == list(REQUIREMENTS) and "torch==2.13.0" in requirements
    assert "gradio>=6.0,<7" in requirements and "transformers>=5.0,<6" in requirements
    info = json.loads((space / "space.json").read_text())
    assert info == {"title": 'Spam: filter "v1"', "task": "text-classification", "family": "lstm",
                    "max_length": 32, "labels": ["negative", "positive"], "panel": "classify"}


def test_space_app_never_imports_modelsmith(repo, settings, tmp_path):
    run = record_run(repo, settings.runs_dir, "transformer-lm")
    space = export_space(run, tmp_path).path
    for name in ("app.py", "text_model.py"):
        tree = ast.parse((space / name).read_text(encoding="utf-8"))
        modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                   for alias in node.names}
        modules |= {node.module.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module}
        assert not modules & {"backend", "storage", "ui", "app"}, name
    assert json.loads((space / "space.json").read_text())["family"] == "transformers"


def test_space_zip_holds_the_same_files(repo, settings, tmp_path):
    run = record_run(repo, settings.runs_dir, "lstm-lm")
    result = export_space(run, tmp_path, as_zip=True)
    assert result.path == tmp_path / f"tiny-lstm-lm-run{run.id}-space.zip" and result.format == "space-zip"
    with zipfile.ZipFile(result.path) as archive:
        assert sorted(archive.namelist()) == result.files
        info = json.loads(archive.read("space.json"))
        assert info["family"] == "lstm-lm" and info["panel"] == "generate"  # the Space app shows what the task says
    assert [p.name for p in tmp_path.iterdir() if p.name != "home"] == [result.path.name]


def test_space_export_refuses_bad_requests(repo, settings, tmp_path):
    run = record_run(repo, settings.runs_dir, "lstm")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / f"tiny-lstm-run{run.id}-space").mkdir()
    with pytest.raises(UserError, match="already exists"):
        export_space(run, tmp_path / "taken")
    with pytest.raises(UserError, match="not a Spaces colour"):
        export_space(run, tmp_path / "a", color_from="teal")
    with pytest.raises(UserError, match="one emoji"):
        export_space(run, tmp_path / "b", emoji="x: y")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "taken"]  # no half-written staging folder
    repo.requeue(run.id)
    with pytest.raises(UserError, match="only a succeeded run"):
        export_space(repo.get_run(run.id), tmp_path / "c")


# --- the Space running on its own ---------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(space: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}  # nothing of Modelsmith
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
               GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1")
    log = open(log_path, "wb")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=space, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the Space app exited with {process.returncode}:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    pytest.fail(f"the Space app did not answer within {START_TIMEOUT_S}s:\n{_tail(log_path)}")


def _tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-3000:]


@pytest.fixture
def running_space(repo, settings, tmp_path):
    """A function kind -> (run, client) that exports a Space for a tiny run of `kind` and serves it."""
    from gradio_client import Client

    processes = []

    def start(kind: str):
        run = record_run(repo, settings.runs_dir, kind)
        space = export_space(run, tmp_path / "space").path
        process, url = _launch(space, tmp_path / "space.log")
        processes.append(process)
        return run, Client(url, verbose=False)

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.parametrize("kind", ["lstm", "transformer-scratch"])
def test_space_app_predicts_like_the_app(kind, running_space):
    from backend.tasks.text_classification.predictor import load_predictor

    run, client = running_space(kind)
    expected = load_predictor(run.output_dir, device="cpu").predict(TEXTS)
    for text, want in zip(TEXTS, expected):
        got = client.predict(text, api_name="/predict")
        assert got["label"] == want["label"]
        scores = {row["label"]: row["confidence"] for row in got["confidences"]}
        assert scores == pytest.approx(want["scores"], abs=1e-5)


@pytest.mark.parametrize("kind", ["lstm-lm", "transformer-lm"])
def test_space_app_writes_the_apps_text_for_a_seed(kind, running_space):
    from backend.tasks.text_generation.generator import load_generator

    run, client = running_space(kind)
    generator = load_generator(run.output_dir, device="cpu")
    for prompt in PROMPTS:
        want = generator.generate(prompt, max_new_tokens=40, temperature=0.9, seed=123)
        assert client.predict(prompt, 40, 0.9, 123, api_name="/generate") == want
        assert want
