"""Tabular classification and regression: a row of a table in, a class (with probabilities) or a number out."""

from __future__ import annotations

from backend.tasks.base import Entry, Task
from backend.tasks.tabular.config import FtTransformerTemplate, GbdtTemplate, MlpTemplate

TEMPLATES = (GbdtTemplate, MlpTemplate, FtTransformerTemplate)
# Where a template's usual settings differ from TrainConfig's defaults (the form switches epochs,
# learning rate and weight decay on a pick; the CLI takes all of them). Learning rates from Gorishniy
# et al. 2021 and LightGBM's default shrinkage; the neural templates see a table many times.
TRAINING_DEFAULTS = {
    "gbdt": {"learning_rate": 0.1, "weight_decay": 0.0},
    "mlp": {"learning_rate": 1e-3, "weight_decay": 1e-5, "epochs": 30, "batch_size": 256},
    "ft-transformer": {"learning_rate": 1e-4, "weight_decay": 1e-5, "epochs": 30, "batch_size": 256},
}
COMMON = dict(
    templates=TEMPLATES,
    default_template="gbdt",
    panel="table",
    train=Entry("backend.tasks.tabular.training:train_table"),
    estimate=Entry("backend.tasks.tabular.estimate:estimate_table"),
    load_model=Entry("backend.tasks.tabular.training:load_model"),
    render_card=Entry("backend.tasks.tabular.card:render_card"),
    training_defaults=TRAINING_DEFAULTS,
    reads_rows=True,
    predict_rows=Entry("backend.tasks.tabular.serving:predict_rows"),
    predict_table=Entry("backend.tasks.tabular.serving:predict_table"),
    input_form=Entry("backend.tasks.tabular.serving:form_fields"),
    weights_files=("model.safetensors", "model.txt"),   # a network, or LightGBM's text model (gbdt)
    model_files=("template.json", "preprocessing.json"),
    # mlp and ft-transformer train on the shared core and read every optimizer-loop setting; what
    # gbdt does not read is its template's ignored_settings.
)

CLASSIFICATION = Task(
    name="tabular-classification",
    label="Table → class",
    upload_label="Tabular classification (a row of a table → a class)",
    model_noun="table classifier",
    best_metric="accuracy",          # (exports_labels stays False: the classes live in preprocessing.json)
    best_metric_label="validation accuracy",
    quality_curves={"eval_accuracy": "accuracy", "eval_macro_f1": "macro F1"},
    prepare=Entry("backend.tasks.tabular.prepare:prepare_classification"),
    headline_key="eval_accuracy",
    headline_label="accuracy",
    length_title="",
    **COMMON,
)

REGRESSION = Task(
    name="tabular-regression",
    label="Table → number",
    upload_label="Tabular regression (a row of a table → a number)",
    model_noun="table regressor",
    best_metric="rmse",
    best_metric_label="validation RMSE",
    higher_is_better=False,
    quality_curves={"eval_rmse": "RMSE", "eval_mae": "MAE"},
    quality_range=(0, None),
    prepare=Entry("backend.tasks.tabular.prepare:prepare_regression"),
    headline_key="eval_rmse",
    headline_format="{label} {value:.4g}",
    headline_label="RMSE",
    length_title="",
    **COMMON,
)
