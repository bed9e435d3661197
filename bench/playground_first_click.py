"""Predict clicked (or Shift+Enter pressed) the moment the Playground opens, on a busy machine: how many get an answer.

    python bench/playground_first_click.py [--tries 10] [--busy 2] [--action click|enter] [--run-first]
                                           [--when page-open|tab-open]

Not a test (it loads every core for a few minutes) but a check to run on demand. It trains a tiny
classifier in a temp home after building the app (as when a run finishes while the page is open;
`--run-first`: before, so the page's first refresh keeps the picker), serves the app, and `--busy`
Python loops keep the cores busy. Each try opens a new page, opens the Playground, types a text
and at once clicks Predict (`--action click`) or presses Shift+Enter in the text box (`enter`),
without waiting for the page to settle, and waits 60 s for a prediction or the app's refusal of an
input that carries no run ("Pick a finished run first": the picker was still empty when it was
sent). It counts the tries answered, refused and with neither; among the answered, those whose
answer did not stay on the page for 4 s (a later update cleared it); among the unanswered, those
where the server never ran the prediction. `--when tab-open`: the page opens with no finished run; each try
then trains one (the previous one deleted), waits a second with the cores busy, and opens the
Playground tab and acts at once (the page's run watcher or the tab's refresh puts that first run
in the picker). Needs Debian's chromium, like the browser tests.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MODELSMITH_LAUNCHER", "thread")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.results_file import write_results  # noqa: E402
from tests.reliability.support import free_port, ingest_toy, train_tiny_lstm  # noqa: E402

# The Playground's answer to an input that carries no run (ui/playground_tab.py's _run_folder).
NO_RUN_PICKED = "Pick a finished run first"
# Longer than the page's run watcher's interval (ui/app.py HEADER_REFRESH_SECONDS, 3 s), so its next
# look, and the picker update it can bring, falls inside the watch.
KEEP_WATCHING_SECONDS = 4
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=10)
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="busy loops (default: one per core)")
    parser.add_argument("--action", choices=["click", "enter"], default="click",
                        help="click Predict, or press Shift+Enter in the text box (a multi-line box submits on it)")
    parser.add_argument("--run-first", action="store_true",
                        help="train the run before building the app: the page's first refresh then keeps the picker")
    parser.add_argument("--when", choices=["page-open", "tab-open"], default="page-open",
                        help="act as the page opens, or as the tab opens once the page's first run has finished")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from backend.services import build_services
    from backend.settings import Settings
    from ui.app import build_app, launch_kwargs

    root = Path(tempfile.mkdtemp(prefix="first-click-"))
    services = build_services(Settings(home=root / "home", _env_file=None))
    predictions: list[float] = []
    load_predictor = services.load_predictor
    # Count the predictions the server runs, to tell an unanswered input it never ran from an answer lost.
    services.load_predictor = lambda run_id, *a, **k: predictions.append(time.monotonic()) or load_predictor(
        run_id, *a, **k)
    tab_open = args.when == "tab-open"
    if not args.run_first:
        demo = build_app(services)  # before the run exists: the page's first refresh then changes the picker
    dataset = ingest_toy(services, root, pairs=40)
    services.runner.start()
    if not tab_open:
        train_tiny_lstm(services, dataset.id, epochs=4)
    if args.run_first:
        demo = build_app(services)
    port = free_port()
    demo.launch(**(launch_kwargs(services.settings) | {"server_port": port, "prevent_thread_lock": True,
                                                        "quiet": True}))
    busy = [] if tab_open else busy_loops(args.busy)
    unanswered = never_ran = no_run_picked = wiped = 0
    seconds: list[float] = []   # from the input to the answer shown
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                                 args=CHROMIUM_ARGS)
            for attempt in range(args.tries):
                page = browser.new_page()
                page.set_default_timeout(60_000)
                page.goto(f"http://127.0.0.1:{port}")
                page.get_by_role("tab", name="Playground").click()
                page.locator("#playground-text textarea").fill("what a good day")
                if tab_open:   # the page has loaded (the box takes text); its first run finishes now
                    page.get_by_role("tab", name="Runs").click()
                    run_id = train_tiny_lstm(services, dataset.id, epochs=1)
                    busy = busy_loops(args.busy)
                    time.sleep(1)
                    page.get_by_role("tab", name="Playground").click()
                ran_before, acted = len(predictions), time.monotonic()
                if args.action == "click":
                    page.locator("#predict").click()
                else:
                    page.locator("#playground-text textarea").press("Shift+Enter")  # submits a multi-line box
                answer = page.locator("#prediction").get_by_text(re.compile("happy|sad")).first
                refusal = page.get_by_text(NO_RUN_PICKED).first
                try:
                    # 60 s: the first prediction of a run loads its model, slow with every core busy.
                    answer.or_(refusal).wait_for(timeout=60_000)
                    if refusal.is_visible():
                        no_run_picked += 1
                        print(f"try {attempt}: refused, no run picked yet", flush=True)
                    else:
                        seconds.append(round(time.monotonic() - acted, 1))
                        # An answer shown must stay: a late update of the page (the panel switch of the
                        # picker's first run) could still clear it. Watch it past the run watcher's next look.
                        kept = stays_visible(page, answer, seconds=KEEP_WATCHING_SECONDS)
                        wiped += not kept
                        print(f"try {attempt}: answered in {seconds[-1]} s" + ("" if kept else ", then wiped"),
                              flush=True)
                except Exception:  # noqa: BLE001 (Playwright's timeout: neither shown)
                    unanswered += 1
                    never_ran += len(predictions) == ran_before
                    print(f"try {attempt}: no answer (the server ran it: {len(predictions) > ran_before})",
                          flush=True)
                page.close()
                if tab_open:
                    stop(busy)
                    services.runner.delete(run_id)   # the next page again opens with no finished run
            browser.close()
    finally:
        stop(busy)
        demo.close()
        services.close()
    write_results("playground-first-click", {"tries": args.tries, "busy_loops": args.busy, "cores": os.cpu_count(),
                                             "action": args.action, "run_first": args.run_first, "when": args.when,
                                             "answered": args.tries - unanswered - no_run_picked,
                                             "answered_then_wiped": wiped,
                                             "answer_seconds_max": max(seconds, default=None),
                                             "refused_no_run_picked": no_run_picked, "unanswered": unanswered,
                                             "unanswered_never_ran": never_ran})


def stays_visible(page, locator, seconds: float) -> bool:
    """Whether `locator` is visible at every look (every 0.1 s) for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not locator.is_visible():
            return False
        page.wait_for_timeout(100)
    return True


def busy_loops(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def stop(loops: list[subprocess.Popen]) -> None:
    for loop in loops:
        loop.kill()
        loop.wait()


if __name__ == "__main__":
    main()
