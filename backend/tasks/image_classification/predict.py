"""Class probabilities for images, decoded exactly as in training (no augmentation)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from backend.tasks.image_classification.batches import to_pixels
from backend.tasks.image_classification.images import load_rgb, resize_square, to_uint8_chw
from backend.tasks.image_classification.model import ImageClassifier


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
