"""A finished image classifier as the app uses it: files in, labels with probabilities out.

The Playground, the CLI, demo links and batch prediction all go through `ImagePredictor`, so a
file that is not an image gets the same clear message everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from backend.errors import UserError
from backend.tasks.image_classification.images import ImageProblem, ImageTooLarge, load_rgb, max_pixels
from backend.tasks.image_classification.model import ImageClassifier, load_classifier
from backend.tasks.image_classification.predict import ZipPrediction, predict_probabilities, predict_zip


class ImagePredictor:
    """Predicts the class of encoded images (JPEG, PNG, ...) with a trained ImageClassifier."""

    def __init__(self, model: ImageClassifier) -> None:
        self.model = model.eval()

    @property
    def labels(self) -> list[str]:
        return list(self.model.labels)

    def predict_files(self, images: Sequence[bytes], names: Sequence[str] | None = None) -> list[dict]:
        """[{"label", "scores": {label: probability}}] per image; UserError naming a file that is not an image."""
        names = list(names) if names is not None else [f"image {i + 1}" for i in range(len(images))]
        for data, name in zip(images, names):  # name the bad file before predicting any
            _check_image(data, name)
        probabilities = predict_probabilities(self.model, list(images))
        return [{"label": self.model.labels[int(row.argmax())],
                 "scores": {label: float(p) for label, p in zip(self.model.labels, row)}} for row in probabilities]

    def predict_zip(self, path: Path) -> ZipPrediction:
        """Every image of a zip (checked like an upload); accuracy and macro F1 when it has class folders."""
        return predict_zip(self.model, path)


def _check_image(data: bytes, name: str) -> None:
    try:
        load_rgb(data)
    except ImageTooLarge as exc:
        raise UserError(f'"{name}" has more pixels than the limit of {max_pixels():,} ({exc}). Resize it and try '
                        "again.") from exc
    except ImageProblem as exc:
        raise UserError(f'"{name}" is not an image this app reads ({exc}). Use a .jpg, .png, .webp, .bmp, .gif or '
                        ".tif file.") from exc


def load_image_predictor(folder: Path | str, device: str | None = None) -> ImagePredictor:
    """The predictor of a finished run's folder (on `device` when given, else the CPU)."""
    model = load_classifier(Path(folder))
    if device is not None:
        model = model.to(device)
    return ImagePredictor(model)
