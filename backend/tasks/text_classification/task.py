"""Text classification: a text in, one of the dataset's labels out."""

from __future__ import annotations

from backend.tasks.base import Entry, Task, has_architecture
from backend.tasks.text_classification.configs import LstmTemplate, TransformerScratchTemplate, TransformerTemplate


def infer_settings(model_config: dict, base_model: str) -> dict | None:
    """The settings of an imported model folder, from its config.json; None when it is not a classifier."""
    if model_config.get("model_kind") == "modelsmith-lstm":
        return {"template": LstmTemplate.model_validate(model_config["template"]),
                "max_length": int(model_config.get("max_length", 128))}
    if has_architecture(model_config, "ForSequenceClassification"):
        return {"template": TransformerTemplate(base_model=base_model)}
    return None


TASK = Task(
    name="text-classification",
    label="Text classification",
    upload_label="Text classification (text → label)",
    model_noun="classifier",
    templates=(TransformerTemplate, TransformerScratchTemplate, LstmTemplate),
    default_template="lstm",
    panel="classify",
    uses_max_length=True,
    exports_labels=True,
    prepare=Entry("backend.tasks.text_classification.prepare:prepare_classification"),
    train=Entry("backend.tasks.text_classification.training:train_classifier"),
    estimate=Entry("backend.training.estimate:estimate_classifier"),
    load_model=Entry("backend.tasks.text_classification.templates:load_model"),
    render_card=Entry("backend.tasks.text_classification.card:render_card"),
    load_predictor=Entry("backend.tasks.text_classification.predictor:load_predictor"),
    infer_settings=infer_settings,
    # Where a template's usual training settings differ from TrainConfig's defaults (the form
    # switches to them when a template is picked). The LSTM learns every embedding from the user's
    # data alone: on small datasets it fits the training set within 3 epochs and stops generalising,
    # so it trains longer, at a higher rate, with stronger weight decay, and the best epoch by
    # validation macro F1 is kept (the SST-2 sweep in the README).
    training_defaults={
        "transformer": {"learning_rate": 5e-5},
        "transformer-scratch": {"learning_rate": 3e-4},
        "lstm": {"learning_rate": 2e-3, "epochs": 10, "weight_decay": 0.1},
    },
)
