"""Validation metrics of an image classifier, and the validation images it got wrong.

The numbers are the text classifier's (backend.tasks.text_classification.metrics: accuracy, macro P/R/F1, per class,
confusion matrix, from scikit-learn); images add the misclassified list for the Runs gallery.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from backend.tasks.text_classification.metrics import classification_metrics
from backend.tasks.image_classification.batches import to_pixels

MAX_MISCLASSIFIED = 200  # the gallery shows the most confident mistakes first


@dataclass(frozen=True)
class Misclassified:
    """A validation image the model got wrong: its row in the validation split, labels and confidence."""

    index: int
    true_label: str
    predicted_label: str
    confidence: float  # the model's probability for the predicted label


@dataclass(frozen=True)
class Evaluation:
    """Metrics (classification_metrics' dict plus 'loss') and the misclassified images, most confident first."""

    metrics: dict
    misclassified: list[Misclassified]

    def misclassified_dicts(self) -> list[dict]:
        """The misclassified images as plain dicts (for JSON with the run's metrics)."""
        return [asdict(item) for item in self.misclassified]


@torch.no_grad()
def evaluate(model, loader: DataLoader, labels: list[str], device: torch.device) -> Evaluation:
    """Loss, classification metrics and misclassified images of `model` over `loader` (no augmentation)."""
    was_training = model.training
    model.eval()
    loss_sum, true_ids, probabilities = 0.0, [], []
    for images, targets in loader:
        images, targets = images.to(device, non_blocking=True), targets.to(device)
        logits = model(to_pixels(images)).float()                       # (B, C)
        loss_sum += F.cross_entropy(logits, targets, reduction="sum").item()
        probabilities.append(logits.softmax(dim=-1).cpu())
        true_ids.append(targets.cpu())
    model.train(was_training)
    probs = torch.cat(probabilities).numpy() if probabilities else np.zeros((0, len(labels)))
    truth = torch.cat(true_ids).numpy() if true_ids else np.zeros(0, dtype=np.int64)
    predicted = probs.argmax(axis=1)
    metrics = classification_metrics(truth, predicted, labels, loss=loss_sum / max(len(truth), 1))
    return Evaluation(metrics=metrics, misclassified=misclassified(truth, probs, labels))


def misclassified(truth: np.ndarray, probabilities: np.ndarray, labels: list[str],
                  limit: int = MAX_MISCLASSIFIED) -> list[Misclassified]:
    """The rows where the most probable label is not the true one, most confident first."""
    predicted = probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, dtype=np.int64)
    wrong = np.flatnonzero(predicted != truth)
    confidence = probabilities[wrong, predicted[wrong]] if len(wrong) else np.zeros(0)
    order = wrong[np.argsort(-confidence, kind="stable")][:limit]
    return [Misclassified(index=int(i), true_label=labels[int(truth[i])], predicted_label=labels[int(predicted[i])],
                          confidence=float(probabilities[i, predicted[i]])) for i in order]
