"""Image classification in the UI, handlers called as plain functions: Data tab zip -> report and
thumbnails, Train tab offers the image templates and launches a tiny cnn, Playground classifies."""

from __future__ import annotations

import warnings

import pytest

from tests.backend.tasks.image_classification.conftest import COLOURS, colour_entries, image_bytes, write_zip
from tests.ui.conftest import form_values
from ui import data_tab, image_panels, playground_tab, train_tab

TASK_NAME = "image-classification"
TINY_CNN_VALUES = {"epochs": 15, "batch_size": 8, "learning_rate": 0.01, "input_size": 16, "width": 8, "stages": 2,
                   "blocks_per_stage": 1, "dropout": 0.0, "augmentation": "off"}


def test_a_zip_upload_is_reported_with_sizes_and_thumbnails(services, tmp_path):
    path = write_zip(tmp_path / "colours.zip", {**colour_entries(6, prefix="photos/"),
                                                "photos/red/broken.png": image_bytes()[:40]})
    preview, _, _, info = data_tab.on_upload(services, str(path))
    assert preview["visible"] is False and "colours.zip" in info and "Image classification" in info
    label_update, text_update = data_tab.on_task_change(TASK_NAME)
    assert label_update["visible"] is False and text_update["visible"] is False  # no columns to pick
    assert all(update["visible"] for update in data_tab.on_task_change("text-classification"))

    report, charts, classes, lengths, table, picker, train_picker, thumbnails = data_tab.on_ingest(
        services, str(path), TASK_NAME, None, None, None, "colours", 20)
    assert "Images:** 18" in report and "Images per class** (3 classes)" in report
    assert "Corrupt or unreadable files (left out):** 1" in report and "broken.png" in report
    assert "width 16–16" in report and "ms-error" not in report
    assert classes["value"].set_index("class")["rows"].to_dict() == {label: 6 for label in COLOURS}
    assert lengths["value"]["count"].sum() == 18 and lengths["title"] == "Image width (pixels)"
    assert thumbnails["visible"] is True and len(thumbnails["value"]) == 12  # 4 per class
    assert {caption for _, caption in thumbnails["value"]} == set(COLOURS)
    assert picker["value"] == train_picker["value"] == services.list_datasets()[0].id


def test_a_bad_zip_shows_the_message_in_the_report_and_stores_nothing(services, tmp_path):
    one_class = write_zip(tmp_path / "cats.zip", {"cat/1.png": image_bytes(), "cat/2.png": image_bytes(noise_seed=3)})
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        report, charts, *rest, thumbnails = data_tab.on_ingest(services, str(one_class), TASK_NAME, None, None, None,
                                                               "", 10)
    assert "ms-error" in report and "Only one class (&#x27;cat&#x27;)" in report and "Traceback" not in report
    assert charts["visible"] is False and thumbnails["visible"] is False
    assert services.list_datasets() == []


@pytest.mark.slow
def test_train_tab_offers_the_image_templates_and_playground_classifies(services, tmp_path):
    path = write_zip(tmp_path / "colours.zip", colour_entries(8))
    data_tab.on_ingest(services, str(path), TASK_NAME, None, None, None, "colours", 25)
    dataset = services.list_datasets()[0]
    assert train_tab.on_dataset_picked(services, dataset.id) == TASK_NAME
    template_update, *_ = train_tab.on_task_change(TASK_NAME, "lstm")
    # The offline pretrained template (bundled ImageNet weights) is offered before the Hub one.
    assert template_update["choices"] == [("cnn", "cnn"), ("efficientnet-lite0", "efficientnet-lite0"), ("vit", "vit")]
    assert template_update["value"] == "cnn"

    estimate = train_tab.on_estimate(services, dataset.id, TASK_NAME, "cnn", "", *form_values("cnn", **TINY_CNN_VALUES))
    assert "Parameters:**" in estimate and "Time per epoch" in estimate
    train_tab.on_launch(services, dataset.id, TASK_NAME, "cnn", "colours cnn", *form_values("cnn", **TINY_CNN_VALUES))
    (run,) = services.list_runs()
    services.runner.start()
    run = services.runner.wait(run.id, 180)
    assert run.status == "succeeded" and run.template == "cnn", run.error

    panel, _, _ = image_panels.on_show_image_panel(services, run.id)
    classify_panel, generate_panel, *_ = playground_tab.on_show_panel(services, run.id)
    assert panel["visible"] is True and classify_panel["visible"] is False and generate_panel["visible"] is False
    probe = tmp_path / "green.png"
    probe.write_bytes(image_bytes(COLOURS["green"], (24, 24), noise_seed=4))
    scores, verdict = image_panels.on_classify_image(services, run.id, str(probe))
    assert max(scores, key=scores.get) == "green" and "Predicted **green**" in verdict
    assert len(scores) == 3 and sum(scores.values()) == pytest.approx(1.0, abs=1e-4)

    zip_path = write_zip(tmp_path / "probe.zip", colour_entries(2, seed=5))
    folder = tmp_path / "home" / "tmp" / "predictions-x"
    folder.mkdir(parents=True)
    csv_path, summary, preview = image_panels.on_predict_zip(services, run.id, str(zip_path), lambda: folder)
    assert csv_path.endswith("probe-predictions.csv") and "Predicted **6** images" in summary and "accuracy" in summary
    assert list(preview.columns) == ["file", "predicted_label", "score", "true_label"] and len(preview) == 6

    text_file = tmp_path / "notes.png"
    text_file.write_text("not really a picture", encoding="utf-8")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        scores, verdict = image_panels.on_classify_image(services, run.id, str(text_file))
    assert scores is None and "is not an image" in verdict
    # The text panel's handlers refuse an image run with a message, not a trace.
    assert playground_tab.on_pick_run(services, run.id)["visible"] is False  # examples are texts

    import gradio as gr

    from ui.app import build_app

    assert isinstance(build_app(services), gr.Blocks)  # the app builds with an image run picked first
    check_the_demo_link(services, run, probe)
    check_the_misclassified_gallery(services, run)


def check_the_misclassified_gallery(services, run):
    """The Runs tab's gallery: shown for an image run, pictures of its recorded mistakes with captions."""
    box, _ = image_panels.on_show_mistakes_box(services, run.id)
    assert box["visible"] is True
    recorded = run.metrics["misclassified"]
    pictures = image_panels.on_misclassified_images(services, run.id)
    assert len(pictures) == len(recorded)
    for (picture, caption), item in zip(pictures, recorded):
        assert caption.startswith(f"{item['true_label']} → {item['predicted_label']}") and picture.size == (16, 16)


def check_the_demo_link(services, run, probe):
    """A demo link of an image run: its page shows the image box, takes an upload and classifies it."""
    from types import SimpleNamespace

    import gradio as gr

    from ui.demo_page import build_demo_page, on_open

    token = services.publish_demo(run.id).token
    request = SimpleNamespace(path_params={"token": token})
    title, unavailable, classify, write, card_box, card = on_open(services, request)
    assert "sorts an image into one of its classes" in title
    assert classify["visible"] is False and write["visible"] is False  # the text boxes stay hidden
    assert 'api_name="/classify_image"' in card and "handle_file" in card
    assert image_panels.on_open_demo_image_box(services, token)["visible"] is True
    assert services.demo_takes_files(token)  # the upload route of this link is open (ui/http_guard)
    scores = image_panels.on_demo_classify(services, token, str(probe))
    assert max(scores, key=scores.get) == "green"
    with pytest.raises(gr.Error, match="Upload an image first"):
        image_panels.on_demo_classify(services, token, None)
    with pytest.raises(gr.Error, match="not available"):
        image_panels.on_demo_classify(services, "no-such-token", str(probe))
    assert image_panels.on_open_demo_image_box(services, "no-such-token")["visible"] is False
    assert isinstance(build_demo_page(services), gr.Blocks)


@pytest.mark.e2e
@pytest.mark.slow
def test_an_image_demo_link_classifies_an_upload_over_http(services, tmp_path):
    """Served for real: the demo's upload route is open for an image run (ui/http_guard), /classify_image
    answers through gradio_client as an outsider would call it, and the text endpoint refuses."""
    from gradio_client import Client, handle_file

    from backend.config import apply_overrides, default_config
    from backend.data.store import IngestOptions
    from tests.ui.test_demo_pages import serve

    dataset = services.ingest(write_zip(tmp_path / "colours.zip", colour_entries(8)),
                              IngestOptions(task=TASK_NAME, validation_fraction=0.25)).dataset
    config = apply_overrides(default_config(dataset.id, "cnn", TASK_NAME), {
        key: str(value) for key, value in TINY_CNN_VALUES.items()})
    run_id = services.runner.submit(config)
    services.runner.start()
    run = services.runner.wait(run_id, 180)
    assert run.status == "succeeded", run.error
    token = services.publish_demo(run.id).token
    probe = tmp_path / "red.png"
    probe.write_bytes(image_bytes(COLOURS["red"], (24, 24), noise_seed=6))
    blocks, base = serve(services)
    try:
        client = Client(f"{base}/demo/{token}/", verbose=False, download_files=False)
        result = client.predict(handle_file(str(probe)), api_name="/classify_image")
        assert result["label"] == "red"
        with pytest.raises(Exception, match="classifies images: send an image"):
            client.predict("some text", api_name="/predict")
        with pytest.raises(Exception, match="classifies images: send an image"):
            client.predict("Once", 20, 0.8, api_name="/generate")
    finally:
        blocks.close()


def test_a_table_of_image_paths_with_its_zip_is_ingested_from_the_data_tab(services, tmp_path):
    """Two files in the Data tab: a CSV of paths and labels, and the zip the paths point into."""
    entries = colour_entries(5, prefix="pictures/")
    zip_path = write_zip(tmp_path / "pictures.zip", entries)
    table = tmp_path / "labels.csv"
    rows = ["image,label"] + [f"{name},{name.split('/')[1]}" for name in entries]
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert data_tab.on_images_zip_shown(TASK_NAME)["visible"] is True
    assert data_tab.on_images_zip_shown("text-classification")["visible"] is False

    # The table alone: the message says where the zip goes, nothing is stored.
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        report, *_ = data_tab.on_ingest(services, str(table), TASK_NAME, None, None, None, "", 20)
    assert "ms-error" in report and "Zip of the images" in report and services.list_datasets() == []

    report, charts, classes, *_, thumbnails = data_tab.on_ingest(
        services, str(table), TASK_NAME, None, None, None, "from a table", 20, None, None, None, str(zip_path))
    assert "Images:** 15" in report and "ms-error" not in report, report
    assert classes["value"].set_index("class")["rows"].to_dict() == {label: 5 for label in COLOURS}
    assert thumbnails["visible"] is True
    (dataset,) = services.list_datasets()
    assert dataset.task == TASK_NAME and dataset.name == "from a table"
