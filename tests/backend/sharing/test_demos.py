"""backend.sharing.demos without a server: tokens, expiry, revocation, a removed model, input limits, the model card."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from backend.sharing import demos
from backend.errors import UserError
from storage.models import utcnow
from tests.ui.share_fixtures import fake_run


@pytest.fixture
def database_url(each_database_url):
    """Demo links (tokens, expiry, revocation, cascade) on the SQLite file, then on PostgreSQL."""
    return each_database_url


@pytest.fixture
def services(settings):
    from backend.services import build_services

    built = build_services(settings)
    yield built
    built.close()


def test_a_published_link_opens_its_run_until_revoked(services, tmp_path):
    run = fake_run(services, tmp_path)
    demo = demos.publish_demo(services.repo, run.id, 1.5)
    assert demos.TOKEN_PATTERN.match(demo.token) and len(demo.token) == 32
    assert timedelta(hours=1.4) < demo.expires_at - utcnow() <= timedelta(hours=1.5)
    assert demos.open_demo(services.repo, f"  {demo.token}\n").run.id == run.id  # pasted with spaces
    assert demos.demo_path(demo.token) == f"/demo/{demo.token}"
    demos.revoke_demo(services.repo, demo.id, run.id)
    with pytest.raises(demos.DemoUnavailable, match="turned the link off"):
        demos.open_demo(services.repo, demo.token)
    never = demos.publish_demo(services.repo, run.id, 0)
    assert never.expires_at is None and never.token != demo.token


@pytest.mark.parametrize("token", [None, "", "short", "x" * 65, "../../etc/passwd", "A" * 31 + "!"])
def test_malformed_or_unknown_tokens_open_nothing(services, token):
    with pytest.raises(demos.DemoUnavailable, match="not valid"):
        demos.open_demo(services.repo, token)


def test_an_expired_link_says_when(services, tmp_path):
    run = fake_run(services, tmp_path)
    when = utcnow() - timedelta(minutes=5)
    services.repo.add_demo(run.id, "E" * 32, when)
    with pytest.raises(demos.DemoUnavailable, match=f"expired on {when:%Y-%m-%d %H:%M} UTC"):
        demos.open_demo(services.repo, "E" * 32)


def test_a_link_stops_when_its_model_is_gone(services, tmp_path):
    run = fake_run(services, tmp_path)
    demo = demos.publish_demo(services.repo, run.id)
    shutil.rmtree(run.output_dir)
    with pytest.raises(demos.DemoUnavailable, match="model was removed"):
        demos.open_demo(services.repo, demo.token)
    services.runner.delete(run.id)  # the run row goes, and its links with it
    with pytest.raises(demos.DemoUnavailable, match="not valid"):
        demos.open_demo(services.repo, demo.token)


def test_publish_refuses_unfinished_runs_and_bad_expiry(services, tmp_path):
    running = fake_run(services, tmp_path / "a", status="running")
    with pytest.raises(UserError, match="only a succeeded run"):
        demos.publish_demo(services.repo, running.id)
    run = fake_run(services, tmp_path / "b")
    for hours in (-2, demos.MAX_EXPIRY_HOURS + 1, float("nan")):
        with pytest.raises(UserError, match="0 means the link never expires"):
            demos.publish_demo(services.repo, run.id, hours)
    assert services.repo.list_demos(run.id) == []


def test_inputs_are_checked_before_the_model_loads(services, tmp_path):
    run = fake_run(services, tmp_path)  # its "weights" are not a model: any load would fail loudly
    token = demos.publish_demo(services.repo, run.id).token
    with pytest.raises(UserError, match="Type a text"):
        demos.demo_predict(services.repo, token, "   ")
    with pytest.raises(UserError, match="at most 10,000"):
        demos.demo_predict(services.repo, token, "x" * 10_001)
    with pytest.raises(UserError, match="classifies text"):
        next(demos.demo_stream(services.repo, token, "hello"))


def test_model_card_drops_the_hub_front_matter(services, tmp_path):
    run = fake_run(services, tmp_path)
    (Path(run.output_dir) / "README.md").write_text("---\nlicense: mit\n---\n\n# Spam filter\nIt filters.\n")
    target = demos.open_demo(services.repo, demos.publish_demo(services.repo, run.id).token)
    assert demos.model_card(target) == "# Spam filter\nIt filters.\n"
    (Path(run.output_dir) / "README.md").unlink()
    assert demos.model_card(target) == ""
    assert demos.strip_front_matter("# no front matter\n---\n") == "# no front matter\n---\n"
