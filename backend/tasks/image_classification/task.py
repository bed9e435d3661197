"""Image classification: an image in, one of the dataset's classes (its zip's folders) out."""

from __future__ import annotations

from backend.tasks.base import Entry, Task, has_architecture
from backend.tasks.image_classification.config import CnnTemplate, EfficientNetLiteTemplate, PretrainedImageTemplate

# config.json's model_kind of Modelsmith's own image networks -> their template (model.STATE_DICT_KINDS;
# not imported from there: it imports torch).
SAVED_KINDS = {"modelsmith-image-cnn": CnnTemplate, "modelsmith-image-efficientnet-lite0": EfficientNetLiteTemplate}


def infer_settings(model_config: dict, base_model: str) -> dict | None:
    """The settings of an imported model folder, from its config.json; None when it is not an image classifier."""
    template = SAVED_KINDS.get(model_config.get("model_kind"))
    if template is not None:
        return {"template": template.model_validate(model_config["template"])}
    if has_architecture(model_config, "ForImageClassification"):
        return {"template": PretrainedImageTemplate(base_model=base_model)}
    return None


TASK = Task(
    name="image-classification",
    label="Image classification",
    upload_label="Image classification (zip of class folders → label)",
    model_noun="image classifier",
    # The offline pretrained template comes before `vit` (a Hub id or folder): it is the pretrained
    # choice that works without network, as the bundled MiniLM-L6 is for text.
    templates=(CnnTemplate, EfficientNetLiteTemplate, PretrainedImageTemplate),
    default_template="cnn",
    panel="image",
    needs_label_column=False,  # the labels are the zip's folder names: there is no column to pick
    exports_labels=True,
    takes_files=True,
    length_title="Image width (pixels)",
    prepare=Entry("backend.tasks.image_classification.ingest:prepare_image_dataset"),
    train=Entry("backend.tasks.image_classification.training:train_images"),
    estimate=Entry("backend.tasks.image_classification.estimate:estimate_images"),
    load_model=Entry("backend.tasks.image_classification.model:load_classifier"),
    render_card=Entry("backend.tasks.image_classification.card:render_card"),
    infer_settings=infer_settings,
    # cnn: a CIFAR-10-sized network from scratch learns at a high rate;
    # cnn: 12 epochs of CIFAR-10 fit a 15-minute budget on a 2-core CPU once the images are decoded
    # once (10 took 12.5 min while they were decoded every epoch; README, bench_images).
    # efficientnet-lite0: 4x below the CNN's rate, so that with train_backbone on the ImageNet
    # features survive the new head's first steps (the rate of the README's benchmark; not swept);
    # vit: the usual rate of a pretrained vision transformer.
    training_defaults={
        "cnn": {"learning_rate": 2e-3, "epochs": 12, "weight_decay": 0.05},
        "efficientnet-lite0": {"learning_rate": 5e-4, "epochs": 3},
        "vit": {"learning_rate": 5e-5, "epochs": 3},
    },
    upload_kind="image-zip",
    load_predictor=Entry("backend.tasks.image_classification.predictor:cached_image_predictor"),
)
