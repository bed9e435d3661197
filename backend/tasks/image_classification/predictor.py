"""A finished image classifier as the app uses it: files in, labels with probabilities out.

The Playground, the CLI, demo links and batch prediction all go through `ImagePredictor`, so a
file that is not an image gets the same clear message everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from backend.errors import UserError
from backend.serving.model_cache import RunFolderCache
from backend.serving.spreadsheet import neutralise_formulas
from backend.tasks.image_classification.images import ImageProblem, ImageTooLarge, load_rgb, max_pixels
from backend.tasks.image_classification.model import ImageClassifier, load_classifier
from backend.tasks.image_classification.predict import ZipPrediction, predict_probabilities, predict_zip

MAX_IMAGE_FILE_BYTES = 64 << 20  # one image file given by path (the CLI); as the zip limit for one member


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

    def predict_paths(self, paths: Sequence[str | Path]) -> list[dict]:
        """Image files and zips of images by path: per image file {"file", "label", "scores"}, per zip
        {"file", "images", "predictions": [{"file", "predicted_label", "score", "true_label"}], "metrics", "skipped"}."""
        results, images, names = [], [], []
        for path in map(Path, paths):
            if not path.is_file():
                raise UserError(f'"{path}" was not found. Give the path of an image file or a .zip of images.')
            if path.suffix.lower() == ".zip":
                prediction = self.predict_zip(path)
                results.append({"file": str(path), "images": len(prediction.rows), "predictions": prediction.rows,
                                "metrics": _scalars(prediction.metrics), "skipped": prediction.skipped})
                continue
            if path.stat().st_size > MAX_IMAGE_FILE_BYTES:
                raise UserError(f'"{path.name}" is over {MAX_IMAGE_FILE_BYTES >> 20} MB; give a smaller image.')
            images.append(path.read_bytes())
            names.append(str(path))
            results.append({"file": str(path)})
        answers = iter(self.predict_files(images, names) if images else [])
        for result in results:
            if "predictions" not in result:
                answer = next(answers)
                result.update(label=answer["label"], scores=_ranked(answer["scores"]))
        return results

    def write_zip_csv(self, zip_path: Path, csv_path: Path) -> ZipPrediction:
        """Predict a zip and write one CSV row per image: file, predicted_label, score (and true_label)."""
        prediction = self.predict_zip(zip_path)
        frame = pd.DataFrame(prediction.rows, columns=["file", "predicted_label", "score", "true_label"])
        frame["score"] = frame["score"].round(6)  # as the text batch: six places say all a probability can
        if frame["true_label"].isna().all():
            frame = frame.drop(columns="true_label")
        Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
        neutralise_formulas(frame).to_csv(csv_path, index=False)  # a file named "=cmd()" must not run in a spreadsheet
        return prediction


def _ranked(scores: dict[str, float]) -> dict[str, float]:
    return dict(sorted(scores.items(), key=lambda item: -item[1]))


def _scalars(metrics: dict | None) -> dict | None:
    return None if metrics is None else {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


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


_CACHE: RunFolderCache[ImagePredictor] = RunFolderCache(load_image_predictor)


def cached_image_predictor(folder: Path | str) -> ImagePredictor:
    """The predictor of a run folder, kept loaded (Playground, demo links, CLI); reloaded when the weights change."""
    return _CACHE.get(folder)
