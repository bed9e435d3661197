"""UI fixtures: real Services in a temp home, a toy CSV with non-standard column names."""

import pytest


@pytest.fixture
def services(settings):
    from backend.services import build_services

    built = build_services(settings)
    yield built
    built.close()


@pytest.fixture
def toy_csv(tmp_path):
    """80 rows, columns `message` and `verdict`: 'good' texts are happy, 'bad' texts are sad."""
    rows = ["message,verdict"]
    for i in range(40):
        rows.append(f"what a good day number {i},happy")
        rows.append(f"what a bad day number {i},sad")
    path = tmp_path / "feedback.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


TINY_LSTM_VALUES = {"epochs": 3, "batch_size": 8, "learning_rate": 0.01, "vocab_size": 100, "embedding_dim": 16,
                    "hidden_size": 16}


def form_values(kind="lstm", **overrides):
    """Train-form values in form order: defaults from the config classes, overrides by field name for `kind`."""
    from backend.config import template_classes, TrainConfig
    from ui import train_tab

    values = []
    for owner, name in train_tab.form_fields():
        model = TrainConfig if owner == "config" else template_classes()[owner]
        value = model.model_fields[name].default
        if owner in ("config", kind) and name in overrides:
            value = overrides[name]
        values.append(value)
    return values
