"""Tasks as plug-ins: backend.tasks.registry.TASKS lists them; one package per task."""
