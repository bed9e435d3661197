"""The shared Batch prediction section: same layout and wiring for text classifiers and table models."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from ui.batch_prediction import batch_failed, build_batch_prediction, on_batch_click


def _handler(run_id, path):
    return None, f"run {run_id}: {path}", pd.DataFrame(), ""


def test_each_panel_keeps_its_element_ids_and_the_click_stays_private():
    with gr.Blocks() as demo:
        run_picker = gr.Dropdown(["1"], value="1")
        texts = build_batch_prediction("one text per row", [".csv"])
        tables = build_batch_prediction("input columns", [".parquet"], elem_prefix="table-")
        on_batch_click(texts, _handler, run_picker)
        on_batch_click(tables, _handler, run_picker)
    ids = {c.get("props", {}).get("elem_id") for c in demo.config["components"]}
    assert {"batch-file", "predict-file", "batch-download", "batch-summary"} <= ids
    assert {"table-batch-file", "table-predict-file", "table-batch-download", "table-batch-summary"} <= ids
    assert texts.file.file_types == [".csv"] and tables.file.file_types == [".parquet"]
    clicks = [d for d in demo.config["dependencies"] if d["targets"] and d["targets"][0][1] == "click"]
    assert len(clicks) == 2 and all(d.get("api_visibility") == "private" for d in clicks)
    outputs = {tuple(d["outputs"]) for d in clicks}
    assert outputs == {tuple(c._id for c in texts.outputs), tuple(c._id for c in tables.outputs)}
    # each click is followed by the browser download of its own CSV
    downloads = [d for d in demo.config["dependencies"] if d.get("js") and d["inputs"]]
    assert {d["inputs"][0] for d in downloads} == {texts.download._id, tables.download._id}


def test_a_failed_batch_clears_the_file_and_shows_the_message():
    file, message, preview, confusion = batch_failed("The file has no rows.")
    assert file is None and "The file has no rows." in message and preview.empty and confusion == ""
