"""Sharing a model: export and import, demo links, Space export, the Hub, model cards."""
