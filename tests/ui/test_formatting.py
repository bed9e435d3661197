"""Record -> display helpers: round histogram bins, heat-map confusion matrix, sizes, progress."""

import math

from ui.formatting import LOSS_KEYS, confusion_html, curves, format_bytes, histogram, progress_html


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
