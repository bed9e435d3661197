"""Benchmark: seconds from process start to the first HTTP 200, `python app.py` against a bare Gradio app.

Not a test. Run from the project root:

    python bench/bench_startup.py [--repeat 3]

Each repeat starts, one after the other (interleaved, so both see the same load):
- `python app.py` with a fresh temporary MODELSMITH_HOME, on a free port;
- a bare Gradio app: `gr.Blocks()` with one Markdown, launched on a free port;
and polls GET / every 50 ms until it answers 200, then stops the process. Target: the app's
median at most 1.5x the bare app's. Results: bench/results/startup-<timestamp>.json and a
markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.5
TIMEOUT_S = 180.0
BARE_APP = """
import os, sys
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
import gradio as gr
with gr.Blocks() as demo:
    gr.Markdown("bare")
demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]), quiet=True)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seconds_to_200(command: list[str], port: int, env: dict[str, str]) -> float:
    """Start `command`, poll http://127.0.0.1:<port>/ until 200; the seconds it took. Stops the process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        while time.perf_counter() - started < TIMEOUT_S:
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited with {process.returncode} before answering")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{command} did not answer within {TIMEOUT_S:.0f} s")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def measure(repeat: int) -> dict:
    base_env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    app_times, bare_times = [], []
    with tempfile.TemporaryDirectory() as scratch:
        bare_script = Path(scratch) / "bare_app.py"
        bare_script.write_text(BARE_APP, encoding="utf-8")
        for index in range(repeat):
            port = free_port()
            env = base_env | {"MODELSMITH_HOME": str(Path(scratch) / f"home{index}"), "MODELSMITH_PORT": str(port)}
            app_times.append(seconds_to_200([sys.executable, "app.py"], port, env))
            port = free_port()
            bare_times.append(seconds_to_200([sys.executable, str(bare_script), str(port)], port, base_env))
            print(f"repeat {index + 1}: app {app_times[-1]:.2f} s, bare Gradio {bare_times[-1]:.2f} s",
                  file=sys.stderr)
    app, bare = statistics.median(app_times), statistics.median(bare_times)
    return {"app_seconds": app_times, "bare_seconds": bare_times, "app_median": app, "bare_median": bare,
            "ratio": app / bare, "target_ratio": TARGET_RATIO, "met": app / bare <= TARGET_RATIO,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    result = measure(parser.parse_args().repeat)
    out = ROOT / "bench" / "results" / f"startup-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print("| start-up to HTTP 200 | median s | runs s |\n|---|---|---|")
    print(f"| `python app.py` | {result['app_median']:.2f} | {', '.join(f'{t:.2f}' for t in result['app_seconds'])} |")
    print(f"| bare Gradio Blocks | {result['bare_median']:.2f} | "
          f"{', '.join(f'{t:.2f}' for t in result['bare_seconds'])} |")
    print(f"\nratio {result['ratio']:.2f}x (target <= {TARGET_RATIO}x: {'met' if result['met'] else 'NOT met'}); "
          f"load average {', '.join(f'{x:.1f}' for x in result['load_average'])}; {result['machine']}; {out}")


if __name__ == "__main__":
    main()
