"""Model cards: the parts every task's card shares (training section, metric tables) read the same everywhere."""

from __future__ import annotations

from backend.config import default_config
from backend.sharing.model_card import classification_metrics_section, metrics_section, training_section
from backend.tasks.registry import TASKS
from storage.records import DatasetRecord

METRICS = {"accuracy": 0.9, "macro_precision": 0.8, "macro_recall": 0.7, "macro_f1": 0.75, "loss": 0.3,
           "per_class": {"ham": {"precision": 0.5, "recall": 0.6, "f1": 0.55, "support": 3},
                         "spam": {"precision": 0.7, "recall": 0.8, "f1": 0.75, "support": 4}}}


def _dataset(task: str) -> DatasetRecord:
    return DatasetRecord(id=1, name="sms", task=task, content_hash="x", path="/tmp", text_column="text",
                         label_column="label", rows=10, train_rows=8, validation_rows=2, labels=["ham", "spam"],
                         classes={"ham": 5, "spam": 5})


def test_classification_metrics_section_lists_scores_then_classes():
    lines = classification_metrics_section(METRICS)
    assert lines[:4] == ["## Validation metrics", "", "| metric | value |", "|---|---|"]
    assert lines[4:9] == ["| accuracy | 0.9000 |", "| macro_precision | 0.8000 |", "| macro_recall | 0.7000 |",
                          "| macro_f1 | 0.7500 |", "| loss | 0.3000 |"]
    assert lines[-2:] == ["| ham | 0.5000 | 0.6000 | 0.5500 | 3 |", "| spam | 0.7000 | 0.8000 | 0.7500 | 4 |"]
    assert classification_metrics_section({"loss": 1.0})[4:] == ["| loss | 1.0000 |"]  # no per-class table


def test_metrics_section_keeps_only_metrics_present_with_their_labels():
    lines = metrics_section({"loss": 2.0, "perplexity": 7.389}, [("loss", "loss (nats)"), ("bits_per_char", "bpc"),
                                                                 ("perplexity", "perplexity")])
    assert lines[4:] == ["| loss (nats) | 2.0000 |", "| perplexity | 7.3890 |"]


def test_training_section_names_the_step_the_metric_and_every_setting():
    config = default_config(1, "lstm", "text-classification")
    lines = training_section(config, "validation macro F1", 40, "early_stop")
    assert lines[2] == "- Best model from step 40, chosen by validation macro F1; training ended: early stop"
    assert "| epochs | 10 |" in lines and "| template.kind | lstm |" in lines


def test_text_and_image_classifier_cards_share_their_metric_tables():
    cards = {}
    for name, kind in (("text-classification", "lstm"), ("image-classification", "cnn")):
        config = default_config(1, kind, name)
        cards[name] = TASKS[name].render_card(config, _dataset(name), METRICS, best_step=3, stop_reason="completed")
        shared = "\n".join(["", *training_section(config, "validation macro F1", 3, "completed"), "",
                            *classification_metrics_section(METRICS), "", "## How to use"])
        assert shared in cards[name], name
    assert "sorts texts into 2 classes" in cards["text-classification"]
    assert "sorts images into 2 classes" in cards["image-classification"]
