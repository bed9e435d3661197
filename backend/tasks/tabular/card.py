"""The model card (README.md) of a tabular model: what it predicts, from which columns, how good, how to use."""

from __future__ import annotations

from backend.sharing.model_card import front_matter, settings_rows
from backend.tasks.registry import get_task

TEMPLATE_NAMES = {"mlp": "dense network (MLP)", "ft-transformer": "FT-Transformer",
                  "gbdt": "gradient-boosted tree ensemble (LightGBM)"}
SCALARS = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "roc_auc", "rmse", "mae", "r2")
TOP_COLUMNS = 10


def render_card(config, dataset, metrics: dict, *, best_step: int = 0, stop_reason: str = "completed") -> str:
    """Model card of a tabular model: front matter, data, settings, validation metrics, importances, usage."""
    task = get_task(config.task)
    kind = config.template.kind
    target = dataset.target_column
    inputs = list(dataset.input_columns)
    if dataset.labels:
        what = (f"predicts `{target}` as one of {len(dataset.labels)} classes "
                f"({', '.join(f'`{label}`' for label in dataset.labels[:10])})")
    else:
        what = f"predicts the number `{target}`"
    lines = [*front_matter(False, task.pipeline_tag, kind), f"# {config.name or dataset.name + ' ' + task.model_noun}",
             "", f"A {TEMPLATE_NAMES.get(kind, kind)} that {what} from {len(inputs)} columns of a table.", "",
             "## Data", "",
             f"- Dataset: **{dataset.name}** ({dataset.train_rows} training rows, {dataset.validation_rows} "
             "validation rows)",
             f"- Inputs: {', '.join(f'`{c}`' for c in inputs)}", f"- Target: `{target}`", "",
             "## Training", "",
             f"- Best model from {'round' if kind == 'gbdt' else 'epoch'} {best_step}, chosen by "
             f"{'the validation loss' if kind == 'gbdt' else task.best_metric_label}; training ended: "
             f"{stop_reason.replace('_', ' ')}",
             "- Preprocessing (fitted on the training split) is saved with the model as preprocessing.json; "
             "missing values and categories unseen in training are handled at prediction time.", "",
             "| setting | value |", "|---|---|", *settings_rows(config),
             "", "## Validation metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {key} | {metrics[key]:.4f} |" for key in SCALARS if isinstance(metrics.get(key), (int, float))]
    importance = metrics.get("feature_importance") or {}
    if importance:
        lines += ["", "## Most important columns (permutation importance on the validation split)", "",
                  "| column | score drop | ± |", "|---|---|---|"]
        lines += [f"| {name} | {value['mean']:.4f} | {value['std']:.4f} |"
                  for name, value in list(importance.items())[:TOP_COLUMNS]]
    lines += ["", "## How to use", "", "With Modelsmith (in this project):", "", "```bash",
              "python app.py predict --run RUN_ID --file rows.csv       # a CSV/xlsx with the input columns",
              "python app.py predict --run RUN_ID --json-rows '[{...}]'  # rows as JSON objects", "```", "",
              "```python", "from backend.tasks.tabular.model_io import TabularModel", "",
              'model = TabularModel.load("path/to/this/folder")',
              "print(model.predict_records([{...}]))  # one dict per row; absent columns count as missing",
              "```", ""]
    return "\n".join(lines)
