"""Real-browser flow of image classification: upload a zip of class folders, train a tiny cnn, classify an image.

Same set-up as tests/ui/test_browser.py (Debian's Chromium through Playwright); screenshots land in
tests/output/screenshots/.
"""

from __future__ import annotations

import pytest

from tests.backend.tasks.image_classification.conftest import COLOURS, colour_entries, image_bytes, write_zip
from tests.ui.test_browser import (CHROMIUM, app_url, browser, open_tab, page, set_number, snap,  # noqa: F401
                                   wait_for_progress)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")]


def test_upload_zip_train_cnn_and_classify_an_image(page, app_url, services, tmp_path):  # noqa: F811
    images = write_zip(tmp_path / "colours.zip", colour_entries(8, prefix="colours/"))
    probe = tmp_path / "probe.png"
    probe.write_bytes(image_bytes(COLOURS["blue"], (24, 24), noise_seed=11))

    page.goto(app_url)
    open_tab(page, "Data")
    page.locator("#data-upload input[type=file]").set_input_files(str(images))
    page.locator("#file-info").get_by_text("a zip of").wait_for()
    page.get_by_text("Image classification (zip of class folders").click()
    page.locator("#ingest").click()
    page.locator("#ingest-report").get_by_text("Images per class").wait_for()
    page.locator("#image-thumbnails img").first.wait_for()
    page.wait_for_timeout(1000)  # let the charts draw
    snap(page, "images_data_report")

    open_tab(page, "Train")
    page.get_by_text("A convolutional network from scratch").wait_for()  # the form followed the dataset to cnn
    set_number(page, "Epochs", 15)
    set_number(page, "Batch size", 8)
    set_number(page, "Learning rate", 0.01)
    page.get_by_text("Advanced settings").click()
    for label, value in {"Input size": 16, "Width": 8, "Stages": 2, "Blocks per stage": 1}.items():
        set_number(page, label, value)
    page.locator("#launch").click()
    page.locator("#launch-output").get_by_text("queued").wait_for()

    open_tab(page, "Runs")
    assert wait_for_progress(page, lambda p: p >= 100.0, timeout_s=240) == 100.0
    page.locator("#run-progress").get_by_text("succeeded").wait_for()
    snap(page, "images_run_finished")

    open_tab(page, "Playground")
    page.locator("#image-panel").wait_for()
    page.locator("#playground-image input[type=file]").set_input_files(str(probe))
    page.locator("#classify-image").click()
    page.locator("#image-verdict").get_by_text("Predicted").wait_for()
    snap(page, "images_playground")
    # Batch: a zip of images -> a CSV download, scored against its class folders.
    batch = write_zip(tmp_path / "probe.zip", colour_entries(2, seed=4))
    page.get_by_text("Batch prediction: a zip of images").click()
    page.locator("#image-batch-file input[type=file]").set_input_files(str(batch))
    with page.expect_download() as download:
        page.locator("#predict-zip").click()
    assert download.value.suggested_filename == "probe-predictions.csv"
    page.locator("#image-batch-summary").get_by_text("Predicted").wait_for()
    assert "Predicted 6 images" in page.locator("#image-batch-summary").inner_text()
    snap(page, "images_playground_batch")
    run = services.repo.list_runs()[0]
    assert run.status == "succeeded" and run.template == "cnn" and run.config.template.width == 8
    assert page.locator("#image-verdict").inner_text().strip().startswith("Predicted blue")
