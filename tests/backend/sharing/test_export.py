"""Model zip download and re-import: contents, round trips, plain Hugging Face folders, hostile archives."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

import pytest

from backend.errors import UserError
from backend.sharing.export import ImportLimits, export_zip, import_model
from backend.tasks.text_generation.generator import load_generator
from backend.tasks.text_classification.predictor import load_predictor
from tests.backend.export_fixtures import CLASSIFIER_KINDS, GENERATOR_KINDS, record_run, trained_folder, tree
from tests.backend.lm_fixtures import tiny_gpt2_folder

TEXTS = ["a good movie", "bad food in town", "", "good good bad", "rain " * 200]
PROMPTS = ["the cat", ""]
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def _scores(folder) -> list[dict]:
    return [p["scores"] for p in load_predictor(folder, device="cpu").predict(TEXTS)]


def _texts(folder) -> list[str]:
    generator = load_generator(folder, device="cpu")
    return [generator.generate(prompt, max_new_tokens=40, temperature=0.9, seed=123) for prompt in PROMPTS]


@pytest.mark.parametrize("kind", CLASSIFIER_KINDS + GENERATOR_KINDS)
@pytest.mark.slow
def test_zip_holds_weights_tokenizer_config_card_and_run_config(kind, repo, settings, tmp_path):
    run = record_run(repo, settings.runs_dir, kind)
    (Path(run.output_dir) / "train.log").write_text("noise", encoding="utf-8")
    (Path(run.output_dir) / "pytorch_model.bin").write_bytes(b"not for export")
    result = export_zip(run, tmp_path / "out")  # a file path whose folder does not exist yet
    assert result.path == tmp_path / "out" and result.format == "zip"
    with zipfile.ZipFile(result.path) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("modelsmith.json"))
        config = json.loads(archive.read("config.json"))
        card = archive.read("README.md").decode()
    assert {"model.safetensors", "config.json", "README.md", "run_config.json", "metrics.json", "tokenizer.json",
            "modelsmith.json"} <= names
    assert names == set(result.files)
    assert "train.log" not in names and not any(name.endswith(PICKLE_SUFFIXES) for name in names)
    assert manifest["task"] == run.task and manifest["template"] == kind and manifest["run_id"] == run.id
    assert card.startswith("---")
    if kind == "lstm":
        assert config["labels"] == ["negative", "positive"]
    elif kind in CLASSIFIER_KINDS:
        assert set(config["id2label"].values()) == {"negative", "positive"}


def test_export_into_a_folder_names_the_zip_after_the_run(repo, settings, tmp_path):
    run = record_run(repo, settings.runs_dir, "lstm", name="My spam model / v2")
    out = tmp_path / "downloads"
    out.mkdir()
    result = export_zip(run, out)
    assert result.path == out / f"My-spam-model-v2-run{run.id}.zip"
    assert [p.name for p in out.iterdir()] == [result.path.name]  # no partial file left behind


def test_export_refuses_a_run_without_a_model(repo, settings, tmp_path):
    run = record_run(repo, settings.runs_dir, "lstm")
    (Path(run.output_dir) / "model.safetensors").unlink()
    with pytest.raises(UserError, match="no model.safetensors"):
        export_zip(run, tmp_path / "x.zip")
    repo.requeue(run.id)
    with pytest.raises(UserError, match="only a succeeded run"):
        export_zip(repo.get_run(run.id), tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


@pytest.mark.parametrize("kind", CLASSIFIER_KINDS)
def test_classifier_round_trip_gives_identical_predictions(kind, repo, settings, tmp_path):
    run = record_run(repo, settings.runs_dir, kind)
    archive = export_zip(run, tmp_path / "model.zip").path
    imported = import_model(archive, repo, settings.runs_dir, name="again")
    new = imported.run
    assert new.id != run.id and new.status == "succeeded" and new.task == "text-classification"
    assert new.name == "again" and new.template == kind and new.dataset_id is None
    assert Path(new.output_dir) == settings.runs_dir / str(new.id)
    assert not (Path(new.output_dir) / "modelsmith.json").exists()
    assert new.config.template == run.config.template  # the run config travelled with the model
    assert new.metrics == run.metrics
    assert _scores(new.output_dir) == _scores(run.output_dir)


@pytest.mark.parametrize("kind", GENERATOR_KINDS)
@pytest.mark.slow
def test_generator_round_trip_gives_identical_text_for_a_seed(kind, repo, settings, tmp_path):
    run = record_run(repo, settings.runs_dir, kind)
    imported = import_model(export_zip(run, tmp_path / "lm.zip").path, repo, settings.runs_dir).run
    assert imported.task == "text-generation" and imported.template == kind and imported.name == run.name
    texts = _texts(imported.output_dir)
    assert texts == _texts(run.output_dir)
    assert all(texts)


# --- plain Hugging Face folders -----------------------------------------------------------------

def _tiny_bert_classifier(folder: Path) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from backend.tasks.text_classification.tokenization import train_tokenizer

    tokenizer = train_tokenizer(["a good movie", "bad food", "town music rain"] * 10, "wordpiece", 80, 64)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                        num_labels=3, id2label={0: "sad", 1: "calm", 2: "happy"},
                        label2id={"sad": 0, "calm": 1, "happy": 2})
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def _zip_folder(folder: Path, archive_path: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(archive_path, "w") as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, prefix + path.name)
    return archive_path


def test_imports_a_zipped_hugging_face_classifier_folder(repo, settings, tmp_path):
    folder = _tiny_bert_classifier(tmp_path / "bert")
    (folder / "pytorch_model.bin").write_bytes(b"a pickle would be here")  # left out, never read
    archive = _zip_folder(folder, tmp_path / "bert.zip", prefix="my-bert/")  # zipped with its folder
    result = import_model(archive, repo, settings.runs_dir)
    run = result.run
    assert run.task == "text-classification" and run.template == "transformer" and run.name == "bert"
    assert "my-bert/pytorch_model.bin" in result.skipped and any("inferred" in note for note in result.notes)
    assert not (Path(run.output_dir) / "pytorch_model.bin").exists()
    assert (Path(run.output_dir) / "README.md").is_file()  # a card is written when the folder had none
    predictor = load_predictor(run.output_dir, device="cpu")
    assert predictor.labels == ["sad", "calm", "happy"]
    assert _scores(run.output_dir) == _scores(folder)


@pytest.mark.e2e
@pytest.mark.slow
def test_imports_a_zipped_gpt2_folder_as_a_language_model(repo, settings, tmp_path):
    folder = tiny_gpt2_folder(tmp_path / "gpt2")
    run = import_model(_zip_folder(folder, tmp_path / "gpt2.zip"), repo, settings.runs_dir, name="tiny gpt").run
    assert run.task == "text-generation" and run.template == "transformer-lm-finetune" and run.name == "tiny gpt"
    assert _texts(run.output_dir) == _texts(folder)


# --- hostile and broken archives ----------------------------------------------------------------

def _model_members(archive: zipfile.ZipFile) -> None:
    """Enough of a real model that only the hostile member can be the reason for a refusal."""
    source = trained_folder("lstm")
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        archive.write(source / name, name)


def _symlink(archive: zipfile.ZipFile) -> None:
    info = zipfile.ZipInfo("link.json")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive.writestr(info, "/etc/passwd")


HOSTILE = {
    "absolute": (lambda a, home: a.writestr(zipfile.ZipInfo(str(home.parent / "evil.json")), "{}"),
                 "absolute path"),
    "dotdot": (lambda a, home: a.writestr("../../evil.json", "{}"), "'..' path"),
    "dotdot-inside": (lambda a, home: a.writestr("model/../../../evil.json", "{}"), "'..' path"),
    "symlink": (lambda a, home: _symlink(a), "symbolic link"),
    "too-many-files": (lambda a, home: [a.writestr(f"extra/{i}.txt", "x") for i in range(30)], "at most 20"),
    "zip-bomb": (lambda a, home: a.writestr("big.txt", b"\0" * 3_000_000, zipfile.ZIP_DEFLATED), "limit is"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_and_write_nothing(case, repo, settings, tmp_path):
    add, message = HOSTILE[case]
    archive_path = tmp_path / "upload" / "model.zip"
    archive_path.parent.mkdir()
    with zipfile.ZipFile(archive_path, "w") as archive:
        _model_members(archive)
        add(archive, settings.home)
    before = tree(tmp_path)
    with pytest.raises(UserError, match=message) as error:
        import_model(archive_path, repo, settings.runs_dir, limits=ImportLimits(max_bytes=2_000_000, max_files=20))
    assert "refused" in str(error.value) or "accepted" in str(error.value)
    assert tree(tmp_path) == before  # the runs dir, the home dir and its parent are as they were
    assert repo.list_runs() == []


def test_bytes_are_counted_while_unpacking_even_when_the_headers_agree(repo, settings, tmp_path):
    # The sizes in the headers pass the check, the real bytes do not: unpacking stops at the limit.
    archive_path = tmp_path / "model.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        _model_members(archive)
    limits = ImportLimits(max_bytes=1000)
    from backend.sharing import export

    with zipfile.ZipFile(archive_path) as archive:
        chosen, _ = export.select_members(archive.infolist())
        target = tmp_path / "target"
        target.mkdir()
        with pytest.raises(UserError, match="more than"):
            export._unpack(archive, chosen, target, limits.max_bytes)


@pytest.mark.parametrize("content, message", [
    (b"this is not a zip", "is not a zip archive"),
    (b"PK\x03\x04 broken", "is not a zip archive"),
])
def test_non_zip_files_are_refused(content, message, repo, settings, tmp_path):
    path = tmp_path / "model.zip"
    path.write_bytes(content)
    before = tree(settings.home)
    with pytest.raises(UserError, match=message):
        import_model(path, repo, settings.runs_dir)
    assert tree(settings.home) == before and repo.list_runs() == []


def test_missing_file_is_refused(repo, settings, tmp_path):
    with pytest.raises(UserError, match="is not a zip archive"):
        import_model(tmp_path / "nothing.zip", repo, settings.runs_dir)


def test_zip_without_a_model_is_refused(repo, settings, tmp_path):
    path = tmp_path / "notes.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
        archive.writestr("data/train.csv", "a,b")
    with pytest.raises(UserError, match="no model.safetensors and config.json"):
        import_model(path, repo, settings.runs_dir)
    assert repo.list_runs() == [] and tree(settings.runs_dir) == set()


def test_pickle_only_weights_are_refused_with_a_safetensors_hint(repo, settings, tmp_path):
    folder = _tiny_bert_classifier(tmp_path / "bert")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")  # bytes do not matter: never read
    with pytest.raises(UserError, match="save the model with safetensors"):
        import_model(_zip_folder(folder, tmp_path / "bert.zip"), repo, settings.runs_dir)
    assert repo.list_runs() == [] and tree(settings.runs_dir) == set()


def test_damaged_weights_are_refused_and_leave_nothing(repo, settings, tmp_path):
    path = tmp_path / "broken.zip"
    source = trained_folder("lstm")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
        archive.write(source / "config.json", "config.json")
        archive.write(source / "tokenizer.json", "tokenizer.json")
    with pytest.raises(UserError, match="could not be loaded"):
        import_model(path, repo, settings.runs_dir)
    assert repo.list_runs() == [] and tree(settings.runs_dir) == set()


def test_unknown_architecture_is_refused(repo, settings, tmp_path):
    folder = _tiny_bert_classifier(tmp_path / "bert")
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["BertModel"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="imports text classifiers"):
        import_model(_zip_folder(folder, tmp_path / "bert.zip"), repo, settings.runs_dir)
    assert repo.list_runs() == []


def test_import_limits_come_from_the_settings(settings, monkeypatch):
    from backend.sharing.export import import_limits
    from backend.settings import Settings

    assert import_limits(settings) == ImportLimits()
    monkeypatch.setenv("MODELSMITH_MAX_IMPORT_MB", "1.5")
    monkeypatch.setenv("MODELSMITH_MAX_IMPORT_FILES", "7")
    assert import_limits(Settings()) == ImportLimits(max_bytes=int(1.5 * 1024 * 1024), max_files=7)


def test_encrypted_zip_is_refused_with_a_message(repo, settings, tmp_path):
    path = tmp_path / "locked.zip"
    with zipfile.ZipFile(path, "w") as archive:
        _model_members(archive)
    data = bytearray(path.read_bytes())
    # Mark every member as encrypted (general-purpose flag bit 0), as a password-protected zip is.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start != -1:
            data[start + offset] |= 0x01
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="without a password"):
        import_model(path, repo, settings.runs_dir)
    assert repo.list_runs() == [] and tree(settings.runs_dir) == set()
