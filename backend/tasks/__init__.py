"""Tasks as plug-ins: one package per task (see ../shared/STYLE.md)."""
