"""Demo links of table models (issue 15): the visitor page's form built from the model's columns, its
gradio_client call, /predict_row over HTTP, and the messages for bad rows, bad dates and dead links."""

from __future__ import annotations

import json
from types import SimpleNamespace

import gradio as gr
import pytest

from backend.config import apply_overrides, default_config
from backend.data.store import IngestOptions
from backend.errors import UserError
from tests.backend.tasks.tabular.conftest import mixed_table
from ui import table_demo

pytestmark = [pytest.mark.slow]  # trains a table model and serves its demo

COLUMNS = ["x", "color", "flag", "when"]


@pytest.fixture
def table_run(services, tmp_path):
    """A succeeded gbdt on the mixed table (numbers, a category, a flag, a date); `label` is yes for red or x > 0.6."""
    path = tmp_path / "mixed.csv"
    mixed_table().to_csv(path, index=False)
    dataset = services.ingest(path, IngestOptions(task="tabular-classification", label_column="label",
                                                  drop_columns=("noise", "amount"), validation_fraction=0.2)).dataset
    config = apply_overrides(default_config(dataset.id, "gbdt", dataset.task),
                             {"num_rounds": "60", "min_rows_per_leaf": "5"})
    run_id = services.runner.submit(config)
    services.runner.start()
    run = services.runner.wait(run_id, 180)
    assert run.status == "succeeded", run.error
    return run


def test_a_table_demo_page_builds_its_form_and_predicts(services, table_run):
    from ui.demo_page import build_demo_page, on_open

    token = services.publish_demo(table_run.id).token
    title, unavailable, classify, write, card_box, card = on_open(services, SimpleNamespace(path_params={"token": token}))
    assert "predicts from one row of a table" in title and classify["visible"] is False and write["visible"] is False
    assert 'api_name="/predict_row"' in card and '\\"color\\"' not in card and '"color": "blue"' in card
    assert not services.demo_takes_files(token)  # a table demo takes no uploads (ui/http_guard)

    box, fields = table_demo.on_open_demo_table_box(services, token)
    assert box["visible"] is True and [f["column"] for f in fields] == COLUMNS
    kinds = [f["kind"] for f in fields]
    assert kinds == ["numeric", "categorical", "boolean", "datetime"]
    probabilities, number = table_demo.on_demo_table_predict(services, token, COLUMNS, kinds, 0.1, "red", "false",
                                                             "2024-03-01 10:00")
    assert max(probabilities, key=probabilities.get) == "yes" and number == ""
    probabilities, _ = table_demo.on_demo_table_predict(services, token, COLUMNS, kinds, 0.1, "green", None, None)
    assert max(probabilities, key=probabilities.get) == "no"
    with pytest.raises(gr.Error, match="'31/31/2024' in `when` is not a date: write it like 2024-01-31"):
        table_demo.on_demo_table_predict(services, token, COLUMNS, kinds, 0.1, "red", None, "31/31/2024")

    answer = table_demo.on_demo_predict_row(services, token, json.dumps({"x": 0.9, "color": "blue"}))
    assert answer["prediction"] == "yes" and set(answer["probabilities"]) == {"no", "yes"}
    assert table_demo.on_demo_predict_row(services, token, "")["prediction"] in ("no", "yes")  # nothing known
    with pytest.raises(gr.Error, match="not valid JSON"):
        table_demo.on_demo_predict_row(services, token, "{x: 1")
    with pytest.raises(gr.Error, match="JSON object of column: value"):
        table_demo.on_demo_predict_row(services, token, "[1, 2]")
    with pytest.raises(UserError, match="send the row to its predict_row endpoint"):
        services.demo_predict(token, "some text")
    with pytest.raises(UserError, match="send the row to its predict_row endpoint"):
        list(services.demo_stream(token, "Once"))

    services.revoke_demo(services.list_demos(table_run.id)[0].id)
    with pytest.raises(gr.Error, match="not available"):
        table_demo.on_demo_predict_row(services, token, "{}")
    assert table_demo.on_open_demo_table_box(services, token)[0]["visible"] is False
    assert isinstance(build_demo_page(services), gr.Blocks)


@pytest.mark.e2e
def test_a_table_demo_link_answers_over_http(services, table_run):
    """Served for real: /predict_row through gradio_client as an outsider calls it; the page has the table box."""
    import httpx
    from gradio_client import Client

    from tests.ui.test_demo_pages import serve

    token = services.publish_demo(table_run.id).token
    blocks, base = serve(services)
    try:
        config = httpx.get(f"{base}/demo/{token}/config", timeout=30).json()
        assert "demo-table-box" in {c.get("props", {}).get("elem_id") for c in config["components"]}
        client = Client(f"{base}/demo/{token}/", verbose=False, download_files=False)
        answer = client.predict(json.dumps({"x": 0.95, "color": "green", "when": "2024-05-01"}),
                                api_name="/predict_row")
        assert answer["prediction"] == "yes" and answer["probabilities"]["yes"] > 0.5
        with pytest.raises(Exception, match="not valid JSON"):
            client.predict("{oops", api_name="/predict_row")
        with pytest.raises(Exception, match="predict_row endpoint"):
            client.predict("some text", api_name="/predict")
    finally:
        blocks.close()
