"""The shape of the code: tasks are plug-ins, imports point one way and never in a circle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("backend", "storage", "ui")
# A task is asked, never named: outside its package and the registry, no code spells a task's name.
TASK_NAME = re.compile(r"""["'](text-classification|text-generation|image-classification|"""
                       r"""tabular-classification|tabular-regression)["']""")
TASK_NAME_ALLOWED = ("backend/tasks/",)


def _python_files(*tops: str) -> list[Path]:
    files = []
    for top in tops:
        path = ROOT / top
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return [f for f in files if "migrations" not in f.parts]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_code_outside_the_tasks_compares_a_task_name():
    hits = []
    for path in _python_files("app.py", *PACKAGES):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(TASK_NAME_ALLOWED):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if TASK_NAME.search(line):
                hits.append(f"{relative}:{number}: {line.strip()}")
    assert not hits, "ask the task (backend.tasks.registry) instead of naming it:\n" + "\n".join(hits)


def test_the_task_name_check_finds_a_comparison():
    """The pattern above catches the shapes it must (so the test above can fail)."""
    assert TASK_NAME.search('if run.task == "text-generation":')
    assert TASK_NAME.search("choices=['text-classification']")
    assert TASK_NAME.search('if task.name == "image-classification":')
    assert not TASK_NAME.search('"Pick a finished text-generation run first."')


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Project modules `path` imports anywhere in the file (deferred imports inside functions too)."""
    found = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (packages' own __init__ edges left out)."""
    files = _python_files("app.py", *PACKAGES)
    modules = {_module_name(f) for f in files}
    graph = {}
    for path in files:
        name = _module_name(path)
        graph[name] = {target for target in _imports(path, modules) if target != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    visiting, done = [], set()

    def visit(module: str) -> list[str] | None:
        if module in visiting:
            return visiting[visiting.index(module):] + [module]
        if module in done:
            return None
        visiting.append(module)
        for target in sorted(graph.get(module, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle:
            return cycle
    return None


def test_no_import_cycle_among_backend_storage_and_ui():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_point_one_way():
    """ui -> backend -> storage: storage imports only backend.config (and what it needs), ui never storage."""
    graph = import_graph()
    for module, targets in graph.items():
        if module.startswith("ui"):
            assert not [t for t in targets if t.startswith("storage")], f"{module} imports storage: {targets}"
        if module.startswith("backend"):
            assert not [t for t in targets if t.startswith("ui")], f"{module} imports ui"
        if module.startswith("storage"):
            assert not [t for t in targets if t.startswith("ui")], f"{module} imports ui"


def test_ui_calls_the_backend_through_service_functions():
    hits = []
    for path in _python_files("ui"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "services.repo" in line:
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hits, "call a service function (backend.services.Services) instead:\n" + "\n".join(hits)


def test_only_app_and_ui_import_gradio():
    for path in _python_files(*PACKAGES):
        if path.relative_to(ROOT).parts[0] == "ui":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        names |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "gradio" not in names, f"{path.relative_to(ROOT)} imports gradio"


# The token-window strategy still hands back text generation's Generator around the model it just
# trained (the epochs strategy asks its task's EpochTask instead).
PREDICTOR_IMPORT_ALLOWED = ("backend.training.windows",)


def predictor_modules() -> set[str]:
    """The modules the tasks predict through (their predictor, generator, row and form entries)."""
    from backend.tasks.registry import TASKS

    fields = ("load_predictor", "predict_rows", "predict_table", "input_form")
    return {entry.module for task in TASKS.values() for entry in (getattr(task, f) for f in fields) if entry}


def direct_predictor_imports(graph: dict[str, set[str]], modules: set[str]) -> list[str]:
    """Modules outside backend/tasks that import a task's predictor module instead of asking the task."""
    return sorted(f"{module} imports {target}" for module, targets in graph.items()
                  if not module.startswith("backend.tasks") and module not in PREDICTOR_IMPORT_ALLOWED
                  for target in targets & modules)


def test_predictors_come_from_the_task():
    """ui/, app.py and backend/ outside the tasks get a predictor from `Task.load_predictor` (or predict_rows)."""
    modules = predictor_modules()
    assert {"backend.tasks.text_classification.predictor", "backend.tasks.text_generation.generator"} <= modules
    hits = direct_predictor_imports(import_graph(), modules)
    assert not hits, "ask the task (Task.load_predictor, Services.load_predictor) instead:\n" + "\n".join(hits)


def test_the_predictor_check_finds_a_direct_import():
    graph = {"ui.playground_tab": {"backend.tasks.text_classification.predictor"},
             "backend.tasks.text_classification.task": {"backend.tasks.text_classification.predictor"}}
    assert direct_predictor_imports(graph, predictor_modules()) == [
        "ui.playground_tab imports backend.tasks.text_classification.predictor"]
