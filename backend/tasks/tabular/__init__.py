"""Tabular classification and regression: typed columns, validation, preprocessing, templates, metrics.

Self-contained for now (issue 15): not yet registered as a task, so the app does not offer it end
to end. Modules, in the order a table goes through them:
- reading: CSV/TSV/xlsx/Parquet/JSON(L) into a pandas DataFrame with missing markers understood;
- columns: column kinds, suggested target, task and columns to drop;
- validation: the validation report and the blocking errors;
- preprocessing: transforms fitted on the training split, saved as JSON;
- config, mlp, ft_transformer, neural_fit, gbdt: the templates and their fit functions;
- metrics: scores and permutation importance; model_io: save and load a trained model.
"""
