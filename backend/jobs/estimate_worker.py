"""The Train tab's estimate, measured in a short process of its own, never in the serving app.

    python -m backend.jobs.estimate_worker --dataset-id N < config.json   # prints the Estimate as JSON

The estimate builds the run's model and times a few optimizer steps (backend.training.estimate):
a model config that is too large, or a model that crashes, takes this process, never the app, and
its memory is given back when it exits. The app calls `estimate_out_of_process`, which reads the
answer from stdout and turns a failure, a crash or a timeout into a message that says what to do.
Settings (home, database, device, precision) travel in the environment as for a training worker.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys

from backend.config import TrainConfig
from backend.errors import UserError
from backend.jobs.launch import PROJECT_ROOT, worker_environment
from backend.jobs.processes import describe_exit, signal_group
from backend.settings import Settings

log = logging.getLogger(__name__)

ESTIMATE_MODULE = "backend.jobs.estimate_worker"


def estimate_command(dataset_id: int) -> list[str]:
    """The estimate process's argv (tests may start another program in its place)."""
    return [sys.executable, "-m", ESTIMATE_MODULE, "--dataset-id", str(dataset_id)]


def estimate_out_of_process(settings: Settings, config: TrainConfig, timeout_s: float | None = None):
    """The Estimate of `config`, measured in a process of its own; UserError with a reason when it fails."""
    from backend.training.estimate import Estimate  # dataclass only: torch is imported there, not here

    timeout_s = settings.estimate_timeout_s if timeout_s is None else timeout_s
    process = subprocess.Popen(estimate_command(config.dataset_id), env={**os.environ, **worker_environment(settings)},
                               cwd=str(PROJECT_ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(config.model_dump_json(), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        signal_group(process.pid, signal.SIGKILL)  # the model it built goes with it
        process.communicate()
        raise UserError(f"The estimate took longer than {timeout_s:.0f} s and was stopped. The model is probably "
                        "too large for this machine, or the machine is very busy: try smaller settings (or set "
                        "MODELSMITH_ESTIMATE_TIMEOUT_S higher).") from None
    answer = _last_json_line(out)
    if process.returncode == 0 and answer and "estimate" in answer:
        return Estimate(**answer["estimate"])
    if answer and "error" in answer:
        raise UserError(answer["error"])
    log.warning("estimate process failed (%s): %s", describe_exit(process.returncode), (err or "")[-2000:])
    hint = " It probably ran out of memory: try a smaller model or batch size." if process.returncode == -9 else ""
    raise UserError(f"The estimate's process ended without an answer ({describe_exit(process.returncode)}).{hint} "
                    "The app's log has its output.")


def _last_json_line(out: str) -> dict | None:
    for line in reversed((out or "").strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Estimate one run's time and memory (the Train tab starts this).")
    parser.add_argument("--dataset-id", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # stdout carries the answer alone
    from backend.jobs.reporting import explain
    from backend.training.estimate import estimate
    from storage.database import make_engine, make_sessions
    from storage.repository import NotFound, Repository

    try:
        config = TrainConfig.model_validate_json(sys.stdin.read())
        if config.dataset_id != args.dataset_id:
            raise UserError("The estimate was asked for another dataset than its config names.")
        settings = Settings()
        engine = make_engine(settings.resolved_database_url)
        try:
            dataset = Repository(make_sessions(engine)).get_dataset(config.dataset_id)
            result = estimate(config, dataset)
        finally:
            engine.dispose()
    except (UserError, NotFound) as exc:
        _answer({"error": str(exc)})
        return 1
    except Exception as exc:  # the app shows a readable reason; the details go to stderr (the app's log)
        log.exception("estimate failed")
        _answer({"error": explain(exc).replace("Training failed", "The estimate failed", 1)})
        return 1
    _answer({"estimate": result.as_dict()})
    return 0


def _answer(payload: dict) -> None:
    """The one JSON line on stdout that estimate_out_of_process reads (logs go to stderr)."""
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
