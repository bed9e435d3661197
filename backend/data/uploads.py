"""Uploaded files are transient: once ingested, the stored Parquet in the home dir is the dataset.

Gradio writes every upload into its cache folder (served by its file routes to whoever holds the
link) and keeps it there. After a successful ingest the UI calls `discard_upload`, so a person's
raw data does not linger in a shared temp folder. It deletes only files inside the given upload
folder: a path the CLI was handed (the person's own file) is never touched.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def discard_upload(path: str | Path | None, upload_dir: str | Path) -> bool:
    """Delete an uploaded temp file (and its now-empty folder) if it lies inside `upload_dir`."""
    if not path:
        return False
    root = Path(upload_dir).resolve()
    try:
        file = Path(path).resolve()
    except OSError:
        return False
    if file == root or root not in file.parents or not file.is_file():
        return False
    try:
        file.unlink()
    except OSError:  # already gone, or not ours to delete: the ingest itself succeeded
        log.debug("could not remove the upload %s", file, exc_info=True)
        return False
    # Gradio gives each upload its own folder (named by a hash); remove it when empty.
    folder = file.parent
    if folder != root:
        try:
            folder.rmdir()
        except OSError:  # not empty: another upload lives there
            pass
    return True
