"""Image demo links over real HTTP: the only demos whose mount takes an upload (issue 17 item 3, issue 14).

Against the served `python app.py`: a valid image token uploads and classifies through its own
mount, the uploaded file is gone once the prediction is made, the size limit is
MODELSMITH_DEMO_MAX_UPLOAD_MB (2 MB here, above the old fixed 1 MB cap) with a message that says
so, and revoked, unknown and text-model tokens cannot upload at all.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.backend.tasks.image_classification.conftest import COLOURS, colour_entries, image_bytes, write_zip
from tests.reliability.conftest import DEMO_UPLOAD_LIMIT_MB
from tests.reliability.test_hostile_traffic import _cached_files, _connect, _head, _read_answer

pytestmark = [pytest.mark.slow]  # against the running app (a `python app.py` process)

TINY_CNN = {"epochs": "3", "batch_size": "8", "learning_rate": "0.01", "input_size": "16", "width": "8",
            "stages": "1", "blocks_per_stage": "1", "dropout": "0.0", "augmentation": "off"}


@pytest.fixture(scope="module")
def image_run(served, tmp_path_factory):
    """A succeeded tiny CNN on three colour classes, trained into the served app's home (the app reads the DB)."""
    from backend.config import apply_overrides, default_config
    from backend.data.store import IngestOptions

    services = served.services
    folder = tmp_path_factory.mktemp("image-demo")
    dataset = services.ingest(write_zip(folder / "colours.zip", colour_entries(6)),
                              IngestOptions(task="image-classification", validation_fraction=0.25)).dataset
    config = apply_overrides(default_config(dataset.id, "cnn", "image-classification"), TINY_CNN)
    run = services.runner.run_job(services.runner.submit(config))
    assert run.status == "succeeded", run.error
    return run


def _noise_png(megabytes: float) -> bytes:
    """A PNG of random pixels (incompressible) of about `megabytes` MB."""
    side = int((megabytes * 2**20 / 3) ** 0.5)
    pixels = np.random.default_rng(1).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


def _upload_image(served, token: str, data: bytes, name: str = "photo.png") -> tuple[int, bytes]:
    boundary = "modelsmithboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    with _connect(served) as sock:
        sock.sendall(_head("POST", f"/demo/{token}/gradio_api/upload", {
            "Host": f"127.0.0.1:{served.app.port}", "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(body)), "Connection": "close"}) + body)
        status, _, answer = _read_answer(sock)
    return status, answer


def test_an_image_demo_classifies_an_upload_and_deletes_it(served, image_run, tmp_path):
    """gradio_client, as a visitor would call the link: upload through /demo/<token>/, classify, file gone."""
    from gradio_client import Client, handle_file

    demo = served.services.publish_demo(image_run.id)
    probe = tmp_path / "red.png"
    probe.write_bytes(image_bytes(COLOURS["red"], (24, 24), noise_seed=6))
    before = _cached_files(served.upload_dir)
    client = Client(f"{served.url}/demo/{demo.token}/", verbose=False, download_files=False)
    result = client.predict(handle_file(str(probe)), api_name="/classify_image")
    assert result["label"] in COLOURS and {c["label"] for c in result["confidences"]} == set(COLOURS)
    assert _cached_files(served.upload_dir) == before  # the visitor's image was deleted after the prediction

    # Bigger than the old fixed 1 MB cap, within the configured 2 MB: taken, classified, deleted.
    big = tmp_path / "big.png"
    big.write_bytes(_noise_png(1.5))
    assert 1.2 * 2**20 < big.stat().st_size < DEMO_UPLOAD_LIMIT_MB * 2**20
    result = client.predict(handle_file(str(big)), api_name="/classify_image")
    assert result["label"] in COLOURS
    assert _cached_files(served.upload_dir) == before


def test_an_image_over_the_demo_limit_is_refused_with_the_limit(served, image_run):
    demo = served.services.publish_demo(image_run.id)
    before = _cached_files(served.upload_dir)
    status, answer = _upload_image(served, demo.token, _noise_png(3))
    assert status == 413, (status, answer[:200])
    message = json.loads(answer)["error"]
    assert f"up to {DEMO_UPLOAD_LIMIT_MB} MB" in message and "smaller image" in message, message
    assert _cached_files(served.upload_dir) == before


def test_only_a_live_image_token_may_upload(served, image_run):
    """Valid image token: 200. The same token once revoked, a made-up one, a text model's: 403, nothing stored."""
    from backend.sharing.demos import publish_demo, revoke_demo

    repo = served.services.repo
    image_demo = publish_demo(repo, image_run.id)
    text_demo = publish_demo(repo, served.run_id)
    status, answer = _upload_image(served, image_demo.token, image_bytes(), name="ok.png")
    assert status == 200, (status, answer[:200])
    (stored,) = json.loads(answer)
    revoke_demo(repo, image_demo.id)
    revoke_demo(repo, text_demo.id)
    try:
        before = _cached_files(served.upload_dir)
        for token in (image_demo.token, text_demo.token, "B" * 32, "not a token"):
            status, answer = _upload_image(served, token.replace(" ", "%20"), image_bytes(noise_seed=9))
            assert status == 403 and b"does not take files" in answer, (token, status, answer[:200])
        text_demo = publish_demo(repo, served.run_id)  # a live text link takes no file either
        status, answer = _upload_image(served, text_demo.token, image_bytes(noise_seed=9))
        assert status == 403, (status, answer[:200])
        assert _cached_files(served.upload_dir) == before
    finally:
        revoke_demo(repo, text_demo.id)
        from pathlib import Path

        Path(stored).unlink(missing_ok=True)  # uploaded but never classified: the demo's delete_cache would take it
