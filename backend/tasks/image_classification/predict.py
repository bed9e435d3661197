"""Class probabilities for images, decoded exactly as in training (no augmentation); a zip in one go."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from backend.errors import UserError
from backend.tasks.text_classification.metrics import classification_metrics
from backend.tasks.image_classification.archive import ArchiveLimits, list_images, open_archive, read_member
from backend.tasks.image_classification.batches import to_pixels
from backend.tasks.image_classification.images import (ImageProblem, ImageTooLarge, load_rgb, resize_square,
                                                       to_uint8_chw)
from backend.tasks.image_classification.model import ImageClassifier
from backend.tasks.image_classification.reading import class_of


@torch.no_grad()
def predict_probabilities(model: ImageClassifier, images: Sequence[bytes], batch_size: int = 64) -> np.ndarray:
    """(N, classes) probabilities of encoded images; ImageProblem for a file that is not an image."""
    model.eval()
    device = next(model.parameters()).device
    batches = []
    for start in range(0, len(images), batch_size):
        arrays = [to_uint8_chw(resize_square(load_rgb(data), model.input_size))
                  for data in images[start:start + batch_size]]
        pixels = to_pixels(torch.from_numpy(np.stack(arrays)).to(device))
        batches.append(model(pixels).float().softmax(dim=-1).cpu().numpy())
    return np.concatenate(batches) if batches else np.zeros((0, len(model.labels)), dtype=np.float32)


def top_classes(model: ImageClassifier, probabilities: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
    """The k most probable (label, probability) pairs of each row."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [[(model.labels[j], float(row[j])) for j in picks] for row, picks in zip(probabilities, order)]


@dataclass(frozen=True)
class ZipPrediction:
    """Batch prediction of a zip: one row per image, metrics when its folders name known classes."""

    rows: list[dict]  # {"file", "predicted_label", "score", "true_label" (or None)}
    metrics: dict | None  # accuracy, macro F1, ... over the images whose folder is a known class
    skipped: list[tuple[str, str]]  # (path, why): corrupt images, other files


def predict_zip(model: ImageClassifier, zip_path, limits: ArchiveLimits = ArchiveLimits()) -> ZipPrediction:
    """Predict every image of a zip (checked as hostile, like an upload); score it when it has class folders."""
    rows, skipped, images = [], [], []
    with open_archive(zip_path, "The zip to predict") as archive:
        listing = list_images(archive, limits)
        try:
            folders = class_of([member.path for member in listing.images])
        except UserError:  # split-like folders (train/, val/): predict anyway, without scoring
            folders = {}
        for member in listing.images:
            data = read_member(archive, member)
            try:
                load_rgb(data)
            except ImageProblem as exc:
                skipped.append((member.path, str(exc)))
                continue
            except ImageTooLarge as exc:
                skipped.append((member.path, f"too many pixels ({exc})"))
                continue
            images.append(data)
            rows.append({"file": member.path, "true_label": folders.get(member.path)})
    if not images:
        raise UserError("The zip holds no readable image to predict. Zip .jpg/.png/.webp/.bmp/.gif/.tif files "
                        "(in class folders, to also get accuracy).")
    probabilities = predict_probabilities(model, images)
    for row, probs in zip(rows, probabilities):
        best = int(probs.argmax())
        row.update(predicted_label=model.labels[best], score=float(probs[best]))
    known = [(i, row) for i, row in enumerate(rows) if row["true_label"] in model.labels]
    metrics = None
    if known:
        truth = [model.labels.index(row["true_label"]) for _, row in known]
        predicted = [int(probabilities[i].argmax()) for i, _ in known]
        metrics = classification_metrics(truth, predicted, model.labels)
    return ZipPrediction(rows=rows, metrics=metrics, skipped=listing.skipped + skipped)
