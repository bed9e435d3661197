"""The tabular metrics that classification_metrics computes from what it already has, against scikit-learn's."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score

from backend.tasks.tabular.metrics import classification_metrics, macro_scores


@pytest.mark.parametrize("seed", range(5))
def test_macro_scores_equal_scikit_learns(seed):
    """Including classes never predicted and classes absent from the truth (zero_division=0)."""
    rng = np.random.default_rng(seed)
    y_true, predicted = rng.integers(0, 4, 60), rng.choice([0, 1, 3], 60)
    y_true[y_true == 2] = 4   # class 2 never true; class 4 never predicted; 5 neither
    labels = range(6)
    ours = macro_scores(confusion_matrix(y_true, predicted, labels=labels))
    theirs = precision_recall_fscore_support(y_true, predicted, average="macro", labels=labels, zero_division=0)[:3]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_binary_metrics_equal_scikit_learns_own_functions(seed):
    """classification_metrics computes some scores from what it already has (fewer input checks):
    they must equal scikit-learn's accuracy_score, precision_recall_fscore_support and roc_auc_score."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, 500)
    positive = np.clip(y_true * 0.3 + rng.random(500) * 0.7, 0, 1).round(2)   # ties, as real scores have
    scores = classification_metrics(y_true, np.stack([1 - positive, positive], axis=1))
    predicted = (positive > 0.5).astype(int)
    assert scores["accuracy"] == pytest.approx(accuracy_score(y_true, predicted), rel=1e-12)
    expected = precision_recall_fscore_support(y_true, predicted, average="macro", zero_division=0)[:3]
    np.testing.assert_allclose([scores["macro_precision"], scores["macro_recall"], scores["macro_f1"]], expected,
                               rtol=1e-12)
    assert scores["roc_auc"] == pytest.approx(roc_auc_score(y_true, positive), rel=1e-12)


def test_predicted_vs_actual_keeps_a_spread_sample_of_labelled_rows():
    from backend.tasks.tabular.metrics import predicted_vs_actual

    actual = np.arange(2000, dtype=float)
    actual[5] = np.nan   # a row without a target is no point
    points = predicted_vs_actual(actual, actual * 2 + 1, max_points=500)
    assert len(points["actual"]) == len(points["predicted"]) == 500
    assert points["actual"][0] == 0 and points["actual"][-1] == 1999 and 5.0 not in points["actual"]
    assert all(p == 2 * a + 1 for a, p in zip(points["actual"], points["predicted"]))
    assert predicted_vs_actual(np.array([1.0, 2.0]), np.array([1.5, 2.5])) == {"actual": [1.0, 2.0],
                                                                              "predicted": [1.5, 2.5]}
