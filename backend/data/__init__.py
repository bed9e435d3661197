"""Collect and prepare: read uploads, check them, store Parquet splits, report."""
