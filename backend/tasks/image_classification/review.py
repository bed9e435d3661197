"""The validation images a finished image classifier got wrong, for the Runs tab's gallery.

Training keeps the most confident mistakes of the best evaluation with the run's metrics
(`misclassified`: row of the validation split, true and predicted label, confidence); the images
themselves come from the stored validation split, never re-predicted.
"""

from __future__ import annotations

from backend.data.store import load_split
from storage.records import DatasetRecord, RunRecord


def misclassified_images(run: RunRecord, dataset: DatasetRecord, limit: int = 24) -> list[tuple[bytes, str]]:
    """(image bytes, "true → predicted (confidence)") of the run's most confident mistakes; [] when it made none."""
    mistakes = list((run.metrics or {}).get("misclassified") or [])[:limit]
    if not mistakes:
        return []
    frame = load_split(dataset, "validation")
    gallery = []
    for item in mistakes:
        index = int(item["index"])
        if 0 <= index < len(frame) and frame["label"].iloc[index] == item["true_label"]:  # the split it was scored on
            gallery.append((frame["image"].iloc[index],
                            f"{item['true_label']} → {item['predicted_label']} ({item['confidence']:.0%})"))
    return gallery
