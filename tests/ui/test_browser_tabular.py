"""Real-browser flow for tables: upload a spreadsheet, pick the target, train gbdt, predict with the Playground form.

Uses the fixtures and helpers of tests/ui/test_browser.py; saves screenshots under tests/output/screenshots/.
"""

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import expect

from tests.ui.test_browser import (CHROMIUM, app_url, browser, open_tab, page, pick, set_number, snap,
                                   wait_for_progress)

__all__ = ["app_url", "browser", "page"]  # fixtures imported for pytest
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed "
                                                                 "(apt-get install -y chromium)")]


def choose(page, label: str) -> None:
    """Click the visible radio option with this text (the Data and Train tabs both offer the tasks)."""
    page.locator("label:visible", has_text=label).first.click()


def test_train_gbdt_on_a_spreadsheet_and_predict_with_the_form(page, app_url, tmp_path, services):
    rng = np.random.default_rng(0)
    salary = rng.uniform(0, 100, 300).round(1)
    city = rng.choice(["Paris", "Lyon", "Nice"], 300)
    table = pd.DataFrame({"customer_id": [f"C{i:05d}" for i in range(300)], "salary": salary, "city": city,
                          "buys": np.where((salary > 50) | (city == "Paris"), "yes", "no")})
    sheet = tmp_path / "customers.xlsx"
    table.to_excel(sheet, index=False)

    page.goto(app_url)
    open_tab(page, "Data")
    choose(page, "Tabular classification")
    page.locator("#data-upload input[type=file]").set_input_files(str(sheet))
    page.locator("#file-info").get_by_text("Suggested target").wait_for()
    expect(page.locator("#label-column input")).to_have_value("buys")           # the suggested target
    expect(page.locator("#drop-columns input[type=checkbox]:checked")).to_have_count(1)  # customer_id, an identifier
    drop_choices = page.locator("#drop-columns label")
    expect(drop_choices).to_have_text(["customer_id", "salary", "city"])   # every column but the target
    pick(page, "label-column", "city")    # another target: it leaves the columns to leave out, buys comes back
    expect(drop_choices).to_have_text(["customer_id", "salary", "buys"])
    pick(page, "label-column", "buys")
    expect(drop_choices).to_have_text(["customer_id", "salary", "city"])
    expect(page.locator("#drop-columns input[type=checkbox]:checked")).to_have_count(1)  # the tick is kept
    page.locator("#ingest").click()
    page.locator("#ingest-report").get_by_text("Class balance").wait_for()
    snap(page, "tabular_data_report")
    dataset = services.list_datasets()[0]
    assert dataset.input_columns == ["salary", "city"] and dataset.target_column == "buys"

    open_tab(page, "Train")  # the new dataset is picked, and the form follows its task
    page.get_by_text("Gradient-boosted decision trees").wait_for()
    page.get_by_text("Advanced settings").click()
    page.get_by_label("Num rounds", exact=True).wait_for()
    page.wait_for_timeout(500)  # the accordion's first render would drop a value typed into it
    for label, value in {"Num rounds": 40, "Min rows per leaf": 5}.items():
        set_number(page, label, value)
    page.locator("#launch").click()
    page.locator("#launch-output").get_by_text("queued").wait_for()

    open_tab(page, "Runs")
    assert wait_for_progress(page, lambda p: p >= 100.0, timeout_s=180) == 100.0
    page.locator("#run-progress").get_by_text("succeeded").wait_for()
    page.locator("#confusion").get_by_text("Confusion matrix").wait_for()
    page.locator("#importance-plot").wait_for()       # which columns mattered
    page.locator("#table-scores").get_by_text("ROC-AUC").wait_for()   # the final scores, and the PR curve
    expect(page.locator("#pr-curve-plot")).to_be_visible()
    expect(page.locator("#fit-plot")).to_be_hidden()   # a classifier has no predicted-vs-actual plot
    snap(page, "tabular_runs_finished")
    run = services.list_runs()[0]
    assert run.template == "gbdt" and run.config.template.num_rounds == 40

    open_tab(page, "Playground")
    page.locator("#table-panel").get_by_label("salary").wait_for()     # a box per column of the model
    expect(page.locator("#playground-text")).to_be_hidden(timeout=30_000)  # the classifier panel hides
    expect(page.locator("#table-panel").get_by_label("salary")).to_have_value("")   # blank = missing, not 0
    page.locator("#table-panel").get_by_label("salary").fill("90")
    page.locator("#table-panel").get_by_label("city").fill("Lyon")
    page.locator("#table-panel").get_by_label("city").press("Enter")
    page.locator("#table-predict").click()
    page.locator("#table-prediction").get_by_text("yes").first.wait_for()
    snap(page, "tabular_playground")


def test_a_table_demo_link_shows_a_form_built_from_the_model(page, services, tmp_path):
    """A visitor opens a table model's demo link: one input per column (a checked box for the date), a
    prediction, and a message for a date that is not one."""
    from backend.config import apply_overrides, default_config
    from backend.data.store import IngestOptions
    from tests.backend.tasks.tabular.conftest import mixed_table
    from tests.ui.test_demo_pages import serve

    path = tmp_path / "mixed.csv"
    mixed_table().to_csv(path, index=False)
    dataset = services.ingest(path, IngestOptions(task="tabular-classification", label_column="label",
                                                  drop_columns=("noise", "amount"))).dataset
    run_id = services.runner.submit(apply_overrides(default_config(dataset.id, "gbdt", dataset.task),
                                                    {"num_rounds": "40", "min_rows_per_leaf": "5"}))
    services.runner.start()
    assert services.runner.wait(run_id, 120).status == "succeeded"
    token = services.publish_demo(run_id).token
    blocks, base = serve(services)
    try:
        page.goto(f"{base}/demo/{token}/")
        page.locator("#demo-table-predict").wait_for()
        expect(page.get_by_text("predicts from one row of a table")).to_be_visible()
        page.get_by_label("x").first.fill("0.9")
        page.locator("#demo-table-predict").click()
        expect(page.locator("#demo-table-prediction")).to_contain_text("yes")
        date_box = page.get_by_label("when")
        date_box.fill("31/31/2024")
        page.locator("#demo-table-predict").click()
        expect(page.get_by_text("is not a date").first).to_be_visible()
        snap(page, "table_demo_link_bad_date")
        date_box.fill("2024-03-01")
        page.get_by_label("x").first.fill("0.05")
        page.locator("#demo-table-predict").click()
        expect(page.locator("#demo-table-prediction")).to_contain_text("no")
    finally:
        blocks.close()
