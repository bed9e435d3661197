"""Modelsmith entry point: `python app.py` serves the web app; sub-commands do the same work from a shell.

    python app.py                         # serve on 127.0.0.1:7860 (MODELSMITH_* settings)
    python app.py ingest PATH --json      # store a dataset, print its summary
    python app.py train --dataset 1 --template lstm --set epochs=2 --json
    python app.py predict --run 3 "some text" --json
    python app.py ingest adult.csv --task tabular-classification --target income --json
    python app.py predict --run 5 --file rows.csv --out predictions/ --json   # a table model
    python app.py predict --run 5 photo.jpg --file images.zip --json    # an image run
    python app.py generate --run 4 "Once upon a time" --seed 1 --json
    python app.py runs --json
    python app.py resume --run 3 --json
    python app.py export --run 3 --format zip|space|space-zip --out PATH --json
    python app.py import model.zip --name "spam v2" --json

The CLI goes through the same backend functions as the UI. Exit codes: 0 ok, 1 the run failed,
2 bad input (the JSON says {"error": ...}).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from backend.errors import bounded, shorten
from backend.log_format import configure_logging
from backend.training.phases import METRICS_KEY as TIMING_KEY

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

log = logging.getLogger("modelsmith")


class BadInput(Exception):
    """A CLI argument problem; reported as {"error": ...} with exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose complaints become BadInput, so `--json` still gets one JSON document (exit code 2)."""

    def error(self, message: str):
        raise BadInput(f"{self.prog}: {message}. See `{self.prog} --help`.")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="app.py", description="Modelsmith: train text models without code.")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="Start the web app (the default).")

    ingest = commands.add_parser("ingest", help="Upload a dataset file into the store.")
    ingest.add_argument("path")
    ingest.add_argument("--validation", help="Optional separate validation file.")
    from backend.tasks.registry import DEFAULT_TASK, TASKS  # pydantic only: the CLI still starts fast

    ingest.add_argument("--task", default=DEFAULT_TASK, choices=list(TASKS))
    ingest.add_argument("--text-column", help="The text column; for image classification from a table, "
                                              "the column of image paths.")
    ingest.add_argument("--images", help="Image classification from a table: the zip its image paths point into.")
    ingest.add_argument("--label-column", "--target", dest="label_column",
                        help="Label column (text) or target column (tables); default: suggested.")
    ingest.add_argument("--drop", action="append", default=[], metavar="COLUMN",
                        help="Tables: leave this column out of the inputs (repeatable).")
    ingest.add_argument("--sheet", help="Tables: the sheet of an .xlsx workbook to read (default: the first).")
    ingest.add_argument("--kind", action="append", default=[], metavar="COLUMN=KIND",
                        help="Tables: read COLUMN as numeric, categorical, boolean or datetime (repeatable).")
    ingest.add_argument("--name")
    ingest.add_argument("--validation-fraction", type=float, default=0.1)
    ingest.add_argument("--seed", type=int, default=42)

    train = commands.add_parser("train", help="Train a model in the foreground through the job runner.")
    train.add_argument("--dataset", type=int, required=True)
    train.add_argument("--template", required=True)
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="Override a setting, e.g. --set epochs=2 --set hidden_size=64")
    train.add_argument("--gpus", help='GPUs for this run: "all", "one" or ids like 0,2 (default: '
                                      'MODELSMITH_GPUS_PER_RUN of MODELSMITH_GPUS).')
    train.add_argument("--nodes", type=int, help="Machines the run spans (default MODELSMITH_MACHINES, 1); start "
                                                 "the others with the `join` command this prints.")
    train.add_argument("--main-ip", help="Address the other machines reach this one at (default "
                                         "MODELSMITH_MAIN_PROCESS_IP, else this machine's name).")
    join = commands.add_parser("join", help="Start this machine's share of a multi-machine run (launched on "
                                            "machine 0 by the app or `train --nodes M`).")
    join.add_argument("--run", type=int, required=True)
    join.add_argument("--machine-rank", type=int, required=True, help="1 to M-1, a different one on each machine.")
    join.add_argument("--wait", type=float, default=600, help="Seconds to wait for machine 0 to launch the run.")

    predict = commands.add_parser("predict", help="Classify texts (or, with an image run, image files; with a "
                                                   "table run, rows) with a finished run.")
    predict.add_argument("--run", type=int, required=True)
    predict.add_argument("--file", action="append", default=[],
                         help="Image run: an image file or a .zip of images (repeatable; paths may also be given "
                              "plainly). Table run: one CSV/TSV/xlsx/Parquet/JSON file of rows (writes a CSV).")
    predict.add_argument("--json-rows", help='Table run: rows as JSON, e.g. \'[{"age": 39, "workclass": "State-gov"}]\'.')
    predict.add_argument("--out", default=".", help="Table run with --file: folder for the predictions CSV.")
    predict.add_argument("texts", nargs="*", help="Texts to classify; for an image run, image or .zip paths.")

    _add_generate_parser(commands)
    _add_share_parsers(commands)
    commands.add_parser("runs", help="List all runs.")
    resume = commands.add_parser("resume", help="Resume an interrupted or cancelled run in the foreground.")
    resume.add_argument("--run", type=int, required=True)

    for sub in commands.choices.values():
        sub.add_argument("--json", action="store_true", help="Print one JSON document on stdout.")
    return parser


def _add_generate_parser(commands) -> None:
    from backend.serving.generation_settings import GenerationSettings  # pydantic only: the CLI still starts fast

    generate = commands.add_parser("generate", help="Continue a prompt with a finished text-generation run.")
    generate.add_argument("--run", type=int, required=True)
    generate.add_argument("prompt", help='Text to continue ("" lets the model start a text).')
    # Numbers are read as text and checked by GenerationSettings, so a bad one gets {"error": ...}
    # like every other bad input (argparse's own type check would print usage and no JSON).
    for name, info in GenerationSettings.model_fields.items():
        default = "random (reported in the output)" if info.default is None else info.default
        generate.add_argument("--" + name.replace("_", "-"), help=f"{info.description} Default: {default}.")


def _add_share_parsers(commands) -> None:
    # --run and --format are checked by cmd_export, not argparse, so a bad value gets {"error": ...}.
    export = commands.add_parser("export", help="Write a finished run's model as a zip, or as a Hugging Face Space.")
    export.add_argument("--run", required=True, help="Id of a succeeded run.")
    export.add_argument("--format", default="zip", help="zip (model files), space (a Space folder) or space-zip.")
    export.add_argument("--out", default=".", help="File or folder to write; a folder (an existing one, or a path ending in /) gets <name>-run<id>.zip.")
    model_import = commands.add_parser("import", help="Import a model zip (Modelsmith's or a Hugging Face "
                                                      "model folder's) as a finished run.")
    model_import.add_argument("path")
    model_import.add_argument("--name", help="Name of the new run; default: the exported run's name.")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except BadInput as exc:
        emit({"error": str(exc)}, argparse.Namespace(json="--json" in argv))
        return 2
    configure_logging()  # control characters in names and texts are escaped: no forged log lines
    # per-file checkpoint chatter and Alembic's per-plugin set-up lines drown the progress lines
    for noisy in ("accelerate", "httpx", "urllib3", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings, problem = load_settings()
    if problem:
        emit({"error": problem}, args)
        return 2
    if args.command in (None, "serve"):
        return serve(settings)
    try:
        result, code = COMMANDS[args.command](settings, args)
    except Exception as exc:  # every failure of a command becomes a readable message
        message = readable_error(exc)
        if message is None:
            log.exception("unexpected error")
            message = f"Unexpected error ({type(exc).__name__}): {exc}"
            code = 1
        else:
            code = 2
        emit({"error": bounded(message)}, args)  # a 1 MB label is not echoed back whole
        return code
    emit(result, args)
    return code


def load_settings():
    """(Settings from the environment, None), or (None, a message naming the bad variable)."""
    from pydantic import ValidationError

    from backend.settings import Settings

    try:
        return Settings(), None
    except ValidationError as exc:  # name the variable, not the pydantic field path
        problems = "; ".join(f"MODELSMITH_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']} "
                             f"(got {shorten(repr(e.get('input')))})" for e in exc.errors())
        return None, f"Invalid setting: {problems}. Fix or unset the environment variable (or .env entry)."


def readable_error(exc: Exception) -> str | None:
    """The user-facing message of an expected error, or None for a bug."""
    from pydantic import ValidationError

    from backend.errors import UserError
    from storage.repository import InUse, NotFound

    if isinstance(exc, (UserError, NotFound, InUse, BadInput)):
        return str(exc)
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return None


def emit(result, args) -> None:
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(result, indent=None, default=str) + "\n")
    else:
        sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")


def _services(settings):
    from backend.services import build_services

    return build_services(settings)


def cmd_ingest(settings, args):
    from backend.data.store import IngestOptions, ingest, ingest_summary

    services = _services(settings)
    options = IngestOptions(task=args.task, text_column=args.text_column, label_column=args.label_column,
                            validation_fraction=args.validation_fraction, seed=args.seed, name=args.name,
                            drop_columns=tuple(args.drop), column_kinds=tuple(_pairs(args.kind, "--kind")),
                            sheet=args.sheet, images_zip=args.images)
    outcome = ingest(Path(args.path), options, validation_path=Path(args.validation) if args.validation else None,
                     settings=settings, repo=services.repo)
    return ingest_summary(outcome), 0


def _pairs(items: list[str], option: str) -> list[tuple[str, str]]:
    """["a=b", ...] -> [("a", "b"), ...]; BadInput naming the option for an item without '='."""
    pairs = []
    for item in items:
        if "=" not in item:
            raise BadInput(f"{option} expects COLUMN=KIND, got '{item}'.")
        key, value = item.rsplit("=", 1)
        pairs.append((key.strip(), value.strip()))
    return pairs


def _print_progress(run_id: int, step: int, values: dict) -> None:
    shown = {k: round(v, 4) for k, v in values.items() if k in (
        "progress", "epoch", "train_loss", "eval_loss", "eval_accuracy", "eval_macro_f1", "eval_bits_per_char",
        "samples_per_second", "tokens_per_second", "eta_seconds")}
    sys.stderr.write(f"run {run_id} step {step} {json.dumps(shown)}\n")


def _run_in_foreground(services, run_id: int):
    services.runner.recover(all_running=False)
    services.runner.add_listener(_print_progress)
    run = services.runner.run_job(run_id)
    return run_summary(run), 0 if run.status == "succeeded" else 1


def run_summary(run) -> dict:
    """The JSON view of a run shared by `train`, `resume` and `runs`."""
    return {"run_id": run.id, "name": run.name, "status": run.status, "task": run.task, "template": run.template,
            "dataset_id": run.dataset_id, "imported_from": run.imported_from, "metrics": _headline(run.metrics),
            "output_dir": run.output_dir, "error": run.error, "progress": run.progress,
            "created_at": run.created_at, "started_at": run.started_at, "finished_at": run.finished_at}


def _headline(metrics: dict) -> dict:
    # per-class tables and the confusion matrix stay in the run folder/DB; the CLI shows scalars
    return {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float))} | {
        key: metrics[key] for key in ("per_class", TIMING_KEY) if metrics and key in metrics}


def cmd_train(settings, args):
    from backend.config import apply_overrides, default_config, template_classes

    if args.template not in template_classes():
        raise BadInput(f"Unknown template '{args.template}'. Choose one of: {', '.join(template_classes())}.")
    overrides = {}
    for item in args.set:
        if "=" not in item:
            raise BadInput(f"--set expects KEY=VALUE, got '{item}'.")
        key, value = item.split("=", 1)
        overrides[key.strip()] = value.strip()
    settings = _with_machines(settings, args.nodes, args.main_ip)
    services = _services(settings)
    dataset = services.repo.get_dataset(args.dataset)
    config = apply_overrides(default_config(dataset.id, args.template, dataset.task), overrides)
    run_id = services.runner.submit(config, gpus=args.gpus)
    if settings.machines > 1:
        from backend.jobs.join import join_command

        sys.stderr.write(f"run {run_id} spans {settings.machines} machines: on each other machine (same "
                         f"MODELSMITH_DATABASE_URL and MODELSMITH_HOME) run\n  {join_command(run_id)}\n"
                         f"with --machine-rank 1 to {settings.machines - 1}\n")
    return _run_in_foreground(services, run_id)


def _with_machines(settings, nodes: int | None, main_ip: str | None):
    """The settings with `train --nodes/--main-ip` applied (validated as the environment's would be)."""
    if nodes is None and main_ip is None:
        return settings
    from backend.settings import Settings

    values = settings.model_dump()
    values.update({k: v for k, v in (("machines", nodes), ("main_process_ip", main_ip)) if v is not None})
    return Settings.model_validate(values)


def cmd_join(settings, args):
    from backend.jobs.join import join_run

    services = _services(settings)
    code = join_run(services.repo, settings, args.run, args.machine_rank, timeout_s=args.wait)
    return {"run_id": args.run, "machine_rank": args.machine_rank, "exit_code": code}, 0 if code == 0 else 1


def cmd_resume(settings, args):
    services = _services(settings)
    services.runner.recover(all_running=False)
    services.runner.resume(args.run)
    return _run_in_foreground(services, args.run)


def cmd_predict(settings, args):
    from backend.tasks.registry import get_task
    from backend.tasks.text_classification.predictor import load_predictor

    services = _services(settings)
    run = services.repo.get_run(args.run)
    if run.status != "succeeded" or not run.output_dir:
        raise BadInput(f"Run {run.id} is {run.status}; only succeeded runs can predict. "
                       "Pick a succeeded run from `python app.py runs`.")
    task = get_task(run.task)
    if task.reads_rows:
        return _predict_rows(task, run, args), 0
    if args.json_rows:
        raise BadInput(f"Run {run.id} is a {task.model_noun}: --json-rows is for table models.")
    if task.load_file_predictor is not None:  # its models read files: the arguments are paths
        paths = [*args.texts, *args.file]
        if not paths:
            raise BadInput(f"Give image files or a .zip of images to classify, e.g. "
                           f"`python app.py predict --run {run.id} photo.jpg` or `--file images.zip`.")
        return task.load_file_predictor(Path(run.output_dir)).predict_paths(paths), 0
    if args.file:
        raise BadInput(f"Run {run.id} classifies texts, not files: give the texts themselves.")
    if not args.texts:
        raise BadInput(f'Give at least one text to classify, e.g. `python app.py predict --run {run.id} "some text"`.')
    if task.panel != "classify":
        raise BadInput(f"Run {run.id} is a text-generation model: it writes text rather than classify it. "
                       f'Use `python app.py generate --run {run.id} "a prompt"`, or pick a classification run.')
    return load_predictor(Path(run.output_dir)).predict(list(args.texts)), 0


def _predict_rows(task, run, args) -> dict:
    """A table model's predictions: of --json-rows (returned), or of --file (a CSV written under --out)."""
    from backend.tasks.tabular.serving import parse_json_rows

    if bool(args.file) == bool(args.json_rows) or args.texts or len(args.file) > 1:
        raise BadInput(f"Run {run.id} is a {task.model_noun}: give either one --file rows.csv or --json-rows "
                       "'[{\"column\": value, ...}]' (not texts).")
    if args.json_rows:
        rows = parse_json_rows(args.json_rows)
        return {"run_id": run.id, "predictions": task.predict_rows(Path(run.output_dir), rows)}
    result = task.predict_table(Path(run.output_dir), Path(args.file[0]), Path(args.out))
    return {"run_id": run.id, "rows": result.rows, "path": str(result.csv_path.resolve()),
            "missing_columns": result.missing_columns, "target_column": result.target_column,
            "metrics": _headline(result.metrics)}


def cmd_runs(settings, args):
    services = _services(settings)
    services.runner.sweep_for_readers()  # a run whose worker process died reads `interrupted`, server or not
    return [run_summary(run) for run in services.repo.list_runs()], 0


def cmd_generate(settings, args):
    """Write a continuation of the prompt; one JSON object with the settings used (seed included)."""
    from pydantic import ValidationError

    from backend.tasks.text_generation.generator import load_generator
    from backend.serving.generation_settings import GenerationSettings, check_prompt, language_model_folder

    given = {name: getattr(args, name) for name in GenerationSettings.model_fields}
    try:
        options = GenerationSettings.model_validate({k: v for k, v in given.items() if v is not None}).with_seed()
    except ValidationError as exc:
        raise BadInput("; ".join(f"--{str(e['loc'][0]).replace('_', '-')} {given.get(e['loc'][0])!r}: {e['msg']}"
                                 for e in exc.errors())) from None
    prompt = check_prompt(args.prompt)
    services = _services(settings)
    generator = load_generator(language_model_folder(services.repo, args.run))
    text = generator.generate(prompt, **options.model_dump())
    return {"run_id": args.run, "prompt": prompt, "text": text, **options.model_dump(),
            "dropped_characters": generator.dropped_characters(prompt)}, 0


EXPORT_FORMATS = ("zip", "space", "space-zip")


def cmd_export(settings, args):
    """Write a run's model as a zip or a Space; JSON with run_id, format, path and files."""
    from backend.sharing.export import export_zip
    from backend.sharing.space import export_space

    if args.format not in EXPORT_FORMATS:
        raise BadInput(f"--format '{args.format}' is unknown; use one of: {', '.join(EXPORT_FORMATS)}.")
    try:
        run_id = int(args.run)
    except ValueError:
        raise BadInput(f"--run expects a run id (a number), got '{args.run}'. "
                       "List runs with `python app.py runs`.") from None
    run = _services(settings).repo.get_run(run_id)
    out = args.out  # kept as typed: a trailing "/" says "a folder" and Path() would drop it
    if args.format == "zip":
        result = export_zip(run, out)
    else:
        result = export_space(run, out, as_zip=args.format == "space-zip")
    return {"run_id": run.id, "format": args.format, "path": str(result.path.resolve()), "files": result.files}, 0


def cmd_import(settings, args):
    """Import a model zip as a succeeded run; JSON with run_id, task, labels and notes."""
    from backend.sharing.export import import_limits, import_model

    services = _services(settings)
    result = import_model(Path(args.path), services.repo, settings.runs_dir, name=args.name,
                          limits=import_limits(settings))
    run = result.run
    return {"run_id": run.id, "name": run.name, "task": run.task, "template": run.template, "labels": result.labels,
            "output_dir": run.output_dir, "skipped": result.skipped, "notes": result.notes}, 0


COMMANDS = {"ingest": cmd_ingest, "train": cmd_train, "predict": cmd_predict, "runs": cmd_runs,
            "resume": cmd_resume, "join": cmd_join, "generate": cmd_generate, "export": cmd_export,
            "import": cmd_import}


def serve(settings) -> int:
    """Recover orphaned runs, start the workers and serve the UI until stopped."""
    from backend.errors import UserError
    from backend.services import build_services, lock_home
    from backend.startup import start_in_background
    from ui.app import build_app, parse_auth  # gradio only: torch and transformers load in the background
    from ui.server import server_kwargs

    try:
        parse_auth(settings.auth)  # a malformed MODELSMITH_AUTH stops here, before any job starts
        home_lock = lock_home(settings)  # held open until we return: one serving app per home dir
    except (UserError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    if settings.share:
        log.warning("MODELSMITH_SHARE is on: anyone with the share link gets the WHOLE app (datasets, runs, "
                    "training)%s. For one model, publish a demo link instead.",
                    "" if settings.auth else " and there is no login (set MODELSMITH_AUTH)")
    try:
        services = build_services(settings)
    except UserError as exc:  # e.g. MODELSMITH_DATABASE_URL names a server that is down
        log.error("%s", exc)
        return 2

    def on_sigterm(signum, frame):  # container stop: running jobs checkpoint and end `interrupted`
        log.info("signal %s: stopping jobs", signum)
        services.runner.shutdown()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)  # before any job starts, so none is cut off unsaved
    services.recover_at_start()
    demo = build_app(services)
    # The page answers while torch and transformers load; workers start once they are loaded, so
    # no job imports transformers while another thread does (that fails with a half-initialised module).
    start_in_background(settings, then=services.runner.start)
    try:
        demo.launch(**server_kwargs(services))  # the main app at /, demo links at /demo/<token>/
    finally:
        services.runner.shutdown()
        if home_lock is not None:
            home_lock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
