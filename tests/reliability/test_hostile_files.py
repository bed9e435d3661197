"""Hostile files: model zips that inflate or bloat, formula cells in downloads, huge labels, forged log lines."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from backend.errors import UserError
from tests.reliability.support import APP, record_figures


def _model_folder(served) -> Path:
    return Path(served.services.repo.get_run(served.run_id).output_dir)


def _zip(folder: Path, target: Path, extra: dict[str, bytes] | None = None,
         replace: dict[str, bytes] | None = None) -> Path:
    """The model files of `folder` as a zip, plus `extra` members, with `replace` members' content swapped."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix in (".safetensors", ".json", ".md"):
                archive.writestr(path.name, (replace or {}).get(path.name, path.read_bytes()))
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return target


def _env(home: Path, **settings) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELSMITH_")}
    return clean | {"MODELSMITH_LAUNCHER": "thread", "MODELSMITH_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                    **{f"MODELSMITH_{k.upper()}": str(v) for k, v in settings.items()}}


# Runs app.py in this interpreter and, at exit, writes the process's own peak RSS (VmHWM) to stderr.
# VmHWM starts afresh at exec; ru_maxrss from wait4 does not: a child forked from a big pytest
# process reports the parent's size at fork as its own peak (seen: 1.2 GB late in the full suite).
_PEAK_WRAPPER = """
import atexit, os, runpy, sys
def _peak():
    with open("/proc/self/status") as status:
        line = next(l for l in status if l.startswith("VmHWM:"))
    sys.stderr.write("PEAK_RSS_KB " + line.split()[1] + "\\n")
atexit.register(_peak)
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))  # as `python app.py` does
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _cli_with_peak(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, dict, float, str]:
    """(exit code, JSON output, peak RSS in MB, stderr) of `python app.py ARGS` (VmHWM of that process)."""
    done = subprocess.run([sys.executable, "-c", _PEAK_WRAPPER, str(APP), *args], cwd=cwd, env=env,
                          capture_output=True)
    err = done.stderr.decode(errors="replace")
    peaks = [int(line.split()[1]) for line in err.splitlines() if line.startswith("PEAK_RSS_KB ")]
    assert peaks, f"the CLI did not report its peak memory: {err[-2000:]}"
    return done.returncode, json.loads(done.stdout or b"{}"), peaks[-1] / 1024, err


def test_inflated_config_is_refused_before_the_model_is_built(served, tmp_path):
    """A small zip whose config.json claims a 5,000,000-word vocabulary (320 M parameters, 1.3 GB in float32)."""
    folder = _model_folder(served)
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 5_000_000
    config["template"]["embedding_dim"] = 64
    archive = _zip(folder, tmp_path / "inflated.zip", replace={"config.json": json.dumps(config).encode()})
    code, result, peak_mb, err = _cli_with_peak(["import", str(archive), "--json"], _env(tmp_path / "home"), tmp_path)
    assert peak_mb < 1200, f"peak RSS {peak_mb:.0f} MB: the model was built before it was refused ({result})"
    assert code == 2, (result, err[-2000:])
    assert "do not belong together" in result["error"] or "too big" in result["error"], result
    record_figures("inflated_import", {"zip_kb": round(archive.stat().st_size / 1024), "peak_rss_mb": round(peak_mb),
                                       "claimed_parameters": 5_000_000 * 64})


def test_parameter_limit_is_a_setting(served, tmp_path):
    from backend.sharing.export import ImportLimits, import_model

    archive = _zip(_model_folder(served), tmp_path / "model.zip")
    repo, runs_dir = served.services.repo, tmp_path / "runs"
    with pytest.raises(UserError, match="MODELSMITH_MAX_IMPORT_PARAMS"):
        import_model(archive, repo, runs_dir, limits=ImportLimits(max_params=1000))
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_import_keeps_only_model_files(served, tmp_path):
    """100 padding .json files (1 MB each, a few KB zipped) are left out; the run folder holds the model only."""
    from backend.sharing.export import import_model

    padding = {f"pad_{i}.json": b"0" * 1_000_000 for i in range(100)}
    archive = _zip(_model_folder(served), tmp_path / "padded.zip", extra=padding)
    result = import_model(archive, served.services.repo, tmp_path / "runs", name="padded")
    folder = Path(result.run.output_dir)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert not any(p.name.startswith("pad_") for p in folder.iterdir())
    assert size < 10_000_000, size
    assert sum(name.startswith("pad_") for name in result.skipped) == 100
    served.services.repo.delete_run(result.run.id)


def test_bloated_tokenizer_is_refused(served, tmp_path):
    """Padding hidden under an allowed name: 70 MB of tokenizer_config.json passes no more."""
    from backend.sharing.export import import_model

    archive = _zip(_model_folder(served), tmp_path / "bloated.zip",
                   extra={"tokenizer_config.json": b" " * 70_000_000})
    with pytest.raises(UserError, match="config, tokenizer and card files"):
        import_model(archive, served.services.repo, tmp_path / "runs")


def test_batch_predictions_csv_has_no_formulas(served, tmp_path):
    """Cells starting with = + - @ tab or CR get a leading quote (OWASP); numeric columns such as -0.5 stay numbers."""
    from backend.serving.batch import predict_file

    path = tmp_path / "formulas.csv"
    rows = [["text", "amount"], ['=HYPERLINK("http://evil.example","click")', "-0.5"], ["+cmd|' /C calc'!A0", "1.5"],
            ["-2+3+cmd|' /C calc'!A0", "-3"], ["@SUM(1+1)*cmd|' /C calc'!A0", "4"], ["\tplain tab", "5"],
            ["a good day", "6"]]
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    result = predict_file(path, served.services.load_predictor(served.run_id), tmp_path / "out", settings=served.settings,
                          text_column="text")
    with result.csv_path.open(newline="", encoding="utf-8") as handle:
        written = list(csv.reader(handle))
    header, body = written[0], written[1:]
    texts = [row[header.index("text")] for row in body]
    assert texts[:5] == ["'" + row[0] for row in rows[1:6]]
    assert texts[5] == "a good day"
    assert [row[header.index("amount")] for row in body] == [row[1] for row in rows[1:]]
    for row in body:
        assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for cell in row), row


def test_error_messages_do_not_echo_a_megabyte(tmp_path, settings, repo, capsys, monkeypatch):
    """A 1 MB label (one class only) and a 1 MB column name: the messages stay short."""
    import app
    from backend.data.store import IngestOptions, ingest

    label = "L" * 1_000_000
    path = tmp_path / "one_class.csv"
    path.write_text("text,label\n" + "".join(f"row {i},{label}\n" for i in range(3)), encoding="utf-8")
    with pytest.raises(UserError) as caught:
        ingest(path, IngestOptions(), settings=settings, repo=repo)
    assert "only the class" in str(caught.value) and len(str(caught.value)) < 2000
    monkeypatch.setenv("MODELSMITH_HOME", str(settings.home))
    code = app.main(["ingest", str(path), "--label-column", "C" * 1_000_000, "--json"])
    out = capsys.readouterr().out
    assert code == 2 and len(out) < 3000 and "more characters" in json.loads(out)["error"], out[:300]


@pytest.mark.slow
def test_newline_in_a_name_cannot_forge_a_log_line(tmp_path):
    """A dataset named 'x\\n<a fake log line>' is logged on one line, its newline escaped."""
    path = tmp_path / "toy.csv"
    path.write_text("text,label\n" + "".join(f"row {i},{'ab'[i % 2]}\n" for i in range(20)), encoding="utf-8")
    forged = "2026-01-01 00:00:00,000 INFO modelsmith: admin password changed"
    completed = subprocess.run([sys.executable, str(APP), "ingest", str(path), "--name", f"evil\n{forged}\rx",
                                "--json"], cwd=tmp_path, env=_env(tmp_path / "home"), capture_output=True,
                               text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = completed.stderr.splitlines()
    assert not any(line.startswith(forged) for line in lines), lines
    assert any("evil\\n2026-01-01" in line for line in lines), lines
