"""Serving finished models: cached predictors, batch prediction, generation settings."""
