"""Helpers for the reliability tests: a real `python app.py` process, tiny data, waiting with a deadline.

Everything here targets 127.0.0.1 only, and every loop is bounded in time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.conftest import PROJECT_ROOT

APP = PROJECT_ROOT / "app.py"
CHECKPOINT_STATE = "trainer_state.json"  # backend.training.checkpoints.CHECKPOINT_STATE: marks a complete checkpoint


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    """Poll `predicate` until it returns something truthy (returned) or `timeout` seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def write_toy_csv(path: Path, pairs: int = 200) -> Path:
    """A learnable two-class CSV with non-standard column names: 'good' texts are happy, 'bad' ones sad."""
    rows = ["message,verdict"]
    for i in range(pairs):
        rows.append(f"what a good day number {i} with friends,happy")
        rows.append(f"what a bad day number {i} in the rain,sad")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def tiny_lstm(dataset_id: int, **overrides):
    """A small LSTM run: ~45 optimizer steps per epoch on the toy CSV, a checkpoint at every epoch end."""
    from backend.config import TrainConfig
    from backend.tasks.text_classification.configs import LstmTemplate

    values = dict(dataset_id=dataset_id, template=LstmTemplate(vocab_size=100, embedding_dim=16, hidden_size=16),
                  epochs=2, batch_size=8, learning_rate=0.01, max_length=32, log_every_steps=5, seed=7)
    return TrainConfig(**{**values, **overrides})


def train_tiny_lstm(services, dataset_id: int, **overrides) -> int:
    """Train a tiny_lstm run to the end (it must succeed); its run id."""
    run_id = services.runner.submit(tiny_lstm(dataset_id, **overrides))
    assert services.runner.wait(run_id, 300).status == "succeeded"
    return run_id


def ingest_toy(services, folder: Path, pairs: int = 200):
    """Store the toy CSV as a dataset; returns its record."""
    from backend.data.store import IngestOptions, ingest

    path = write_toy_csv(folder / "toy.csv", pairs)
    options = IngestOptions(text_column="message", label_column="verdict", validation_fraction=0.1)
    return ingest(path, options, settings=services.settings, repo=services.repo).dataset


def complete_checkpoints(output_dir: Path) -> list[int]:
    """Steps of the complete checkpoints (trainer state written) in a run folder, ascending."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(int(p.name.split("-")[1]) for p in root.iterdir()
                  if p.name.startswith("step-") and (p / CHECKPOINT_STATE).is_file())


def integrity(db_path: Path) -> tuple[str, list]:
    """(PRAGMA integrity_check, PRAGMA foreign_key_check rows) of a SQLite file, read directly."""
    connection = sqlite3.connect(str(db_path))
    try:
        return (connection.execute("PRAGMA integrity_check").fetchone()[0],
                connection.execute("PRAGMA foreign_key_check").fetchall())
    finally:
        connection.close()


def http_get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """(status, body) of a GET; HTTP errors are answers too, not exceptions."""
    request = urllib.request.Request(url, headers={"User-Agent": "modelsmith-reliability-test"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback only)
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket in LISTEN state on `port` (Linux /proc/net/tcp{,6})."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(_address(address, width))
    return found


def _address(hex_address: str, width: int) -> str:
    if width == 8:  # IPv4, little-endian
        return socket.inet_ntop(socket.AF_INET, bytes.fromhex(hex_address)[::-1])
    raw = bytes.fromhex(hex_address)  # IPv6: four little-endian 32-bit words
    return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


class AppProcess:
    """`python app.py` (serve) on 127.0.0.1:<port> with its own home dir, run from a neutral folder.

    It runs from `workdir`, not the project root, so a developer's .env never changes what is tested.
    Output goes to a log file (a pipe could fill up and block the server).
    """

    def __init__(self, home: Path, port: int, workdir: Path, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.home, self.port, self.workdir = Path(home), port, Path(workdir)
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = self.workdir / f"app-{port}.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELSMITH_")}
        # The thread launcher: these tests kill or signal the app and expect its run to go with it (a
        # worker process would train on); tests/backend/jobs/test_workers.py covers worker processes.
        self.env = clean | {"MODELSMITH_LAUNCHER": "thread", "MODELSMITH_HOME": str(self.home),
                            "MODELSMITH_PORT": str(port), "HF_HUB_OFFLINE": "1",
                            "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                            "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"} | (env or {})
        self.args = args
        self.process: subprocess.Popen | None = None

    def start(self) -> AppProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, str(APP), *self.args], cwd=self.workdir, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 120.0) -> AppProcess:
        """Block until the page answers 200 (AssertionError with the log if the process dies or times out)."""
        def ready():
            if not self.alive():
                raise AssertionError(f"app exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                return http_get(self.url + "/", timeout=2)[0] == 200
            except OSError:
                return False

        try:
            wait_until(ready, timeout, f"the app on {self.url}", interval=0.3)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None
        return self

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float = 60.0) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 30 s."""
        if not self.alive():
            return
        self.signal(signal.SIGTERM)
        try:
            self.wait_exit(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.wait_exit(10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def gradio_config(url: str) -> dict:
    """The app's /config JSON."""
    status, body = http_get(url + "/config")
    assert status == 200, status
    return json.loads(body)


FIGURES = PROJECT_ROOT / "tests" / "output" / "reliability" / "figures.json"


def record_figures(section: str, values: dict) -> None:
    """Merge `values` under `section` in tests/output/reliability/figures.json (the README's Reliability numbers)."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    try:
        figures = json.loads(FIGURES.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        figures = {}
    figures[section] = {**values, "recorded_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    FIGURES.write_text(json.dumps(figures, indent=2, sort_keys=True), encoding="utf-8")
