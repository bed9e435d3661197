"""Tabular classification and regression (issue 15): the two tasks `tabular-classification` and
`tabular-regression` (task.py), registered in backend/tasks/registry.py. Modules, in the order a
table goes through them:
- reading: CSV/TSV/xlsx/Parquet/JSON(L) into a pandas DataFrame with missing markers understood;
- columns: column kinds, suggested target, task and columns to drop;
- validation: the validation report and the blocking errors;
- prepare: the ingest entry (Task.prepare): target and inputs chosen, checked, split, stored typed;
- preprocessing: transforms fitted on the training split, saved as JSON;
- config, mlp, ft_transformer, neural_fit, gbdt, fitting: the templates and their fit functions;
- training: a run in the app (Task.train): progress keys, metrics, importances, model folder, card;
- metrics: scores and permutation importance; model_io: save and load a trained model;
- serving: predictions for JSON rows and table files, and the Playground form's fields; card: the model card.
"""
