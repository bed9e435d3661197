"""Record -> display helpers: round histogram bins, heat-map confusion matrix, sizes, progress."""

import math

from ui.formatting import (LOSS_KEYS, confusion_html, curves, format_bytes, histogram, progress_html,
                           readable_number)


def test_histogram_uses_round_bins_and_folds_the_tail():
    assert histogram([23, 24, 24, 25]).to_dict("list") == {"length": ["23", "24", "25"], "count": [1, 2, 1]}
    lengths = list(range(0, 200)) * 2 + [50_000]  # one huge text must not squash every bar
    bars = histogram(lengths)
    assert bars["length"].iloc[0] == "0–9" and bars["length"].iloc[-1].endswith("+")
    assert bars["count"].sum() == len(lengths) and len(bars) <= 21
    assert histogram([]).empty


def test_confusion_html_shades_by_row_share_and_escapes_labels():
    page = confusion_html({"confusion_matrix": [[9, 1], [0, 10]], "labels": ["<b>", "ok"]})
    assert "<th>&lt;b&gt;</th>" in page and "<th><b></th>" not in page
    assert "90% of true &lt;b&gt;" in page and page.count("<tr>") == 3
    assert confusion_html({}) == ""


def test_curves_keep_numeric_types_and_every_series():
    frame = curves([], LOSS_KEYS, every_series=True)
    assert list(frame["series"]) == ["train", "validation"] and all(math.isnan(v) for v in frame["value"])
    assert str(frame["step"].dtype) == "int64" and str(frame["value"].dtype) == "float64"


def test_sizes_and_progress_read_well():
    assert format_bytes(512) == "512 bytes" and format_bytes(3 * 2**20) == "3.0 MB" and format_bytes(25 * 2**30) == "25 GB"
    assert "Select a run" in progress_html(None, {})


def test_a_training_runs_eta_says_it_comes_from_its_own_pace():
    from datetime import datetime

    from storage.records import RunRecord

    run = RunRecord(id=1, name="r", dataset_id=1, task="text-classification", template="lstm", status="running",
                    config_json="{}", started_at=datetime(2026, 1, 1), progress=0.4)
    html = progress_html(run, {"eta_seconds": 125.0, "total_steps": 100.0})
    assert "ETA 2m05s (at this run's measured pace)" in html and "step ~40 of 100" in html


def test_batch_preview_puts_the_prediction_first_and_cuts_long_texts():
    import pandas as pd

    from ui.formatting import PREVIEW_TEXT_CHARS, predictions_first

    preview = pd.DataFrame({"text": ["x" * 5000, "short"], "label": ["a", "b"], "predicted_label": ["a", "a"],
                            "score_a": [0.9, 0.6], "score_b": [0.1, 0.4]})
    shown = predictions_first(preview)
    assert list(shown.columns) == ["predicted_label", "score_a", "score_b", "text", "label"]
    assert shown["text"][0] == "x" * PREVIEW_TEXT_CHARS + "…" and shown["text"][1] == "short"
    assert preview["text"][0] == "x" * 5000  # the frame given (and the CSV written from it) stays whole


def test_a_range_hint_reads_as_plain_numbers():
    """fnlwgt's range on Adult was shown as 1.4847e+06: whole numbers now read in full."""
    assert readable_number(1_484_705.0) == "1484705" and readable_number(-3.0) == "-3"
    assert readable_number(0.00030069) == "0.0003007" and readable_number(0.99721) == "0.9972"
    assert readable_number(12_345.678) == "12345.7" and readable_number(float("nan")) == "nan"
