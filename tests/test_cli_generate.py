"""The CLI for text generation: train a language model, then `generate`; bad input exits 2 with {"error": ...}."""

import json
import os
import subprocess
import sys

import pytest

import app
from tests.conftest import PROJECT_ROOT

pytestmark = [pytest.mark.slow]  # every test reads a language model that two CLI processes ingested and trained

PATTERN = "the cat sat on a mat.\nbig dogs run far!\n"
TINY_LM = ["--set", "max_steps=80", "--set", "block_size=32", "--set", "hidden_size=48", "--set", "batch_size=16",
           "--set", "learning_rate=0.01", "--set", "eval_every_steps=20", "--set", "eval_batches=2"]


def cli(home, *argv, timeout=300):
    """Run `python app.py ... --json` in a fresh process; (exit code, the JSON on stdout)."""
    env = {**os.environ, "MODELSMITH_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "app.py", *argv, "--json"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, (done.stdout, done.stderr[-2000:])  # one JSON document, progress on stderr
    return done.returncode, json.loads(lines[0])


def run_main(capsys, *argv):
    code = app.main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def lm_home(tmp_path_factory):
    """(home, dataset id, run id): a .txt corpus ingested and a tiny lstm-lm trained, through the CLI."""
    folder = tmp_path_factory.mktemp("cli-generate")
    corpus = folder / "pattern.txt"
    corpus.write_text(PATTERN * 60, encoding="utf-8")
    home = folder / "home"
    code, dataset = cli(home, "ingest", str(corpus), "--task", "text-generation")
    assert code == 0 and dataset["task"] == "text-generation", dataset
    code, run = cli(home, "train", "--dataset", str(dataset["dataset_id"]), "--template", "lstm-lm", *TINY_LM)
    assert code == 0, run
    return home, dataset["dataset_id"], run


@pytest.fixture
def in_home(lm_home, monkeypatch):
    """The module's home for in-process calls of app.main (quicker than a new process)."""
    monkeypatch.setenv("MODELSMITH_HOME", str(lm_home[0]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return lm_home


@pytest.mark.e2e
def test_train_reports_language_model_metrics(lm_home):
    home, dataset_id, run = lm_home
    assert run["status"] == "succeeded" and run["task"] == "text-generation" and run["template"] == "lstm-lm"
    assert {"loss", "perplexity", "bits_per_char"} <= set(run["metrics"])
    assert run["metrics"]["bits_per_char"] < 1.0  # the repeating pattern was learnt (a uniform guess: ~4.3)
    assert (home / "runs" / str(run["run_id"]) / "model.safetensors").is_file()


@pytest.mark.e2e
def test_generate_prints_one_object_and_a_seed_repeats_the_text(lm_home):
    home, _, run = lm_home
    argv = ["generate", "--run", str(run["run_id"]), "the cat", "--max-new-tokens", "40", "--seed", "5",
            "--temperature", "1.2", "--top-k", "0", "--top-p", "1"]
    code, first = cli(home, *argv)
    assert code == 0, first
    assert (first["run_id"], first["prompt"], first["seed"], first["max_new_tokens"]) == (run["run_id"], "the cat",
                                                                                          5, 40)
    assert len(first["text"]) == 40 and first["dropped_characters"] == ""
    code, again = cli(home, *argv)
    assert code == 0 and again["text"] == first["text"]


@pytest.mark.e2e
def test_generate_greedy_continues_the_pattern_and_reports_a_random_seed(capsys, in_home):
    _, _, run = in_home
    code, result = run_main(capsys, "generate", "--run", str(run["run_id"]), "the cat sat", "--temperature", "0",
                            "--max-new-tokens", "29")
    assert code == 0 and result["text"] == " on a mat.\nbig dogs run far!\n"
    code, result = run_main(capsys, "generate", "--run", str(run["run_id"]), "", "--max-new-tokens", "5")
    assert code == 0 and isinstance(result["seed"], int) and len(result["text"]) == 5  # empty prompt: fine
    code, again = run_main(capsys, "generate", "--run", str(run["run_id"]), "", "--max-new-tokens", "5",
                           "--seed", str(result["seed"]))
    assert again["text"] == result["text"]  # the reported seed reproduces the text
    code, result = run_main(capsys, "generate", "--run", str(run["run_id"]), "the QXZ cat", "--max-new-tokens", "3")
    assert code == 0 and result["dropped_characters"] == "QXZ"


@pytest.mark.parametrize("flags, message", [
    (["--max-new-tokens", "lots"], "--max-new-tokens 'lots': Input should be a valid integer"),
    (["--max-new-tokens", "0"], "--max-new-tokens '0': Input should be greater than or equal to 1"),
    (["--temperature", "-1"], "--temperature '-1': Input should be greater than or equal to 0"),
    (["--top-k", "2.5"], "--top-k '2.5': Input should be a valid integer"),
    (["--top-p", "0"], "--top-p '0': Input should be greater than 0"),
    (["--top-p", "1.5"], "--top-p '1.5': Input should be less than or equal to 1"),
    (["--seed", "-4"], "--seed '-4': Input should be greater than or equal to 0"),
])
def test_bad_numbers_exit_2_with_a_message(capsys, in_home, flags, message):
    _, _, run = in_home
    code, result = run_main(capsys, "generate", "--run", str(run["run_id"]), "the", *flags)
    assert code == 2 and message in result["error"]


def test_wrong_runs_exit_2_with_a_message(capsys, in_home, tmp_path):
    _, _, run = in_home
    code, result = run_main(capsys, "generate", "--run", "999", "the")
    assert code == 2 and "Run 999 does not exist" in result["error"]
    code, result = run_main(capsys, "generate", "--run", str(run["run_id"]), "x" * 10_001)
    assert code == 2 and "the limit is 10,000" in result["error"]
    code, result = run_main(capsys, "predict", "--run", str(run["run_id"]), "hello")
    assert code == 2 and "text-generation model" in result["error"] and "app.py generate" in result["error"]

    table = tmp_path / "toy.csv"
    table.write_text("message,verdict\n" + "".join(f"good {i},happy\nbad {i},sad\n" for i in range(20)))
    code, dataset = run_main(capsys, "ingest", str(table), "--text-column", "message", "--label-column", "verdict")
    assert code == 0
    from backend.config import default_config
    from backend.services import build_services
    from backend.settings import Settings

    services = build_services(Settings())
    try:  # a queued classifier is enough: the task is checked before the status
        classifier = services.runner.submit(default_config(dataset["dataset_id"], "lstm"))
        unfinished = services.runner.submit(default_config(in_home[1], "lstm-lm"))
    finally:
        services.close()
    code, result = run_main(capsys, "generate", "--run", str(classifier), "the")
    assert code == 2 and "classifies texts and cannot write any" in result["error"]
    code, result = run_main(capsys, "generate", "--run", str(unfinished), "the")
    assert code == 2 and "is queued; only succeeded runs can generate" in result["error"]


@pytest.mark.e2e
def test_transformer_lm_trains_from_the_cli(capsys, in_home):
    _, dataset_id, _ = in_home
    code, run = run_main(capsys, "train", "--dataset", str(dataset_id), "--template", "transformer-lm",
                         "--set", "max_steps=10", "--set", "block_size=16", "--set", "hidden_size=16",
                         "--set", "num_layers=1", "--set", "num_heads=2", "--set", "batch_size=8",
                         "--set", "eval_batches=1")
    assert code == 0 and run["status"] == "succeeded", run
    assert {"loss", "perplexity", "bits_per_char"} <= set(run["metrics"])
    code, result = run_main(capsys, "generate", "--run", str(run["run_id"]), "the", "--max-new-tokens", "7",
                            "--seed", "3")
    # One character per token, but a sampled special token (end of text) adds none: at most 7.
    assert code == 0 and 0 < len(result["text"]) <= 7 and result["seed"] == 3
    code, again = run_main(capsys, "generate", "--run", str(run["run_id"]), "the", "--max-new-tokens", "7",
                           "--seed", "3")
    assert again["text"] == result["text"]


def test_finetuning_a_hub_model_offline_fails_with_a_clear_message(capsys, in_home):
    _, dataset_id, _ = in_home
    code, run = run_main(capsys, "train", "--dataset", str(dataset_id), "--template", "transformer-lm-finetune",
                         "--set", "base_model=distilgpt2", "--set", "max_steps=2")
    assert code == 1 and run["status"] == "failed"
    assert "'distilgpt2' could not be loaded" in run["error"] and "local" in run["error"]
