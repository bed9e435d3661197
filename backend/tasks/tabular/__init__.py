"""Tabular classification and regression (issue 15): the two tasks `tabular-classification` and
`tabular-regression` (task.py), registered in backend/tasks/registry.py. Modules, in the order a
table goes through them:
- reading: CSV/TSV/xlsx/Parquet/JSON(L) into a pandas DataFrame with missing markers understood;
- columns: column kinds, suggested target, task and columns to drop;
- validation: the validation report and the blocking errors;
- prepare: the ingest entry (Task.prepare): target and inputs chosen, checked, split, stored typed;
- preprocessing: transforms fitted on the training split, saved as JSON;
- config, mlp, ft_transformer, networks, gbdt: the templates (networks: build and predict the two neural ones);
- neural_training: mlp and ft-transformer on the shared training core's epochs strategy (checkpoints,
  Stop, resume), budget: their time budget shared between training and the evaluation and importance
  after it; gbdt: LightGBM's boosting rounds;
- training: a run in the app (Task.train): gbdt's run (progress keys, metrics, importances, model
  folder, card), the neural templates handed to neural_training; fitting: one template fitted on
  data frames outside a stored dataset (tests, bench/bench_tabular.py), by the same code;
- metrics: scores and permutation importance; model_io: save and load a trained model;
- serving: predictions for JSON rows and table files, and the Playground form's fields; card: the model card.
"""
