"""Start-up: the web UI imports neither torch nor transformers; they load on first use (bench/bench_startup.py)."""

import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT


@pytest.mark.slow
def test_building_the_ui_imports_no_torch_or_transformers():
    probe = ("import sys; import app, ui.app, ui.server; "
             "print(sorted(m for m in ('torch', 'transformers', 'sklearn', 'accelerate') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_model_stack_loads_on_first_use_and_names_the_device(settings):
    from backend.serving import startup

    assert startup.detect_device(settings.model_copy(update={"device": "cpu"})) == "CPU"
    assert "torch" in sys.modules and startup.device_if_loaded(settings) == "CPU"
    startup.load_model_stack()  # a second call is a no-op (no re-import, no error)
