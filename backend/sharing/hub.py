"""Push a run to the Hugging Face Hub: as a model repository, or as a Space running its demo.

Nothing is half-done: every file is first written into a local staging folder (the model files,
or a whole Space from backend.sharing.space); only once that folder is complete is the repository
created, and the folder then goes up in one commit (`upload_folder`). Any failure becomes a
UserError that says what to do: no token (checked before any network call), offline mode, no
route to the Hub's host, a refused token, a repository name the Hub does not accept.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from backend.errors import UserError
from backend.sharing.export import copy_model_files, model_folder
from backend.sharing.space import write_space
from storage.records import RunRecord

log = logging.getLogger(__name__)

PushKind = Literal["model", "space"]
DEFAULT_ENDPOINT = "https://huggingface.co"
TOKEN_PAGE = "https://huggingface.co/settings/tokens"


@dataclass(frozen=True)
class PushResult:
    """Where the run went: repository id, kind, its web address and the files uploaded."""

    repo_id: str
    kind: str
    url: str
    files: list[str]


def push_model(run: RunRecord, repo_id: str, token: str | None, kind: PushKind = "model", *,
               private: bool = False, endpoint: str | None = None) -> PushResult:
    """Upload `run` to the Hub as `repo_id` ("user/name"): its model files (kind="model") or a Space demo.

    Args:
        token: a Hugging Face access token with write permission; empty -> UserError, no network call.
        endpoint: the Hub's address; default HF_ENDPOINT or https://huggingface.co.
    """
    if kind not in ("model", "space"):
        raise UserError(f"Push kind '{kind}' is unknown; use 'model' (the model files) or 'space' (a demo app).")
    token = (token or "").strip()
    if not token:
        raise UserError(f"A Hugging Face access token is needed to push. Create one with write permission at "
                        f"{TOKEN_PAGE} and paste it here.")
    repo_id = _check_repo_id(repo_id)
    model_folder(run)  # a run without a model fails before anything is staged
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    with tempfile.TemporaryDirectory(prefix="modelsmith-push-") as staging_dir:
        staging = Path(staging_dir) / "repo"
        if kind == "space":
            files = write_space(run, staging, title=repo_id.split("/")[-1])
        else:
            files = copy_model_files(run, staging)
        url = _upload(staging, repo_id, token, kind, private, endpoint, run)
    log.info("pushed run %d to %s (%s, %d files)", run.id, url, kind, len(files))
    return PushResult(repo_id=repo_id, kind=kind, url=url, files=files)


def _check_repo_id(repo_id: str) -> str:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    repo_id = (repo_id or "").strip()
    try:
        if repo_id.count("/") != 1:
            raise HFValidationError("it needs exactly one '/'")
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise UserError(f"'{repo_id[:100]}' is not a repository name the Hub accepts "
                        f"({str(exc).splitlines()[0][:200]}). Write it as <user or organisation>/<name>, "
                        "with letters, digits, '-', '_' and '.', e.g. alice/spam-filter.") from None
    return repo_id


def _upload(staging: Path, repo_id: str, token: str, kind: str, private: bool, endpoint: str,
            run: RunRecord) -> str:
    """Create the repository (the staging folder is complete by now), upload it; its web address."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    try:
        repo_url = api.create_repo(repo_id, repo_type=kind, private=private, exist_ok=True,
                                   space_sdk="gradio" if kind == "space" else None)
        api.upload_folder(repo_id=repo_id, repo_type=kind, folder_path=str(staging),
                          commit_message=f"Upload run {run.id} ({run.name}) from Modelsmith")
    except Exception as exc:  # every library and network error becomes one readable message
        log.info("push to %s failed", repo_id, exc_info=True)
        raise UserError(explain_hub_error(exc, endpoint, repo_id)) from exc
    return str(repo_url)


def explain_hub_error(exc: Exception, endpoint: str, repo_id: str) -> str:
    """A user-facing message for an error from huggingface_hub while pushing."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    host = urlparse(endpoint).netloc or endpoint
    if isinstance(exc, OfflineModeIsEnabled):
        return (f"Pushing needs the network, but offline mode is on (HF_HUB_OFFLINE=1), so {host} was not "
                "contacted. Unset HF_HUB_OFFLINE and push again, or download the zip and upload it yourself.")
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        detail = (getattr(exc, "server_message", None) or str(exc)).strip().splitlines()[0][:300]
        if status == 401:
            return (f"{host} refused the token (401: {detail}). Check that it is complete and not revoked; "
                    f"create a new one at {TOKEN_PAGE}.")
        if status == 403:
            return (f"The token may not write to '{repo_id}' (403: {detail}). Use a token with write permission "
                    f"for '{repo_id.split('/')[0]}', or push to your own namespace.")
        return f"{host} answered {status or 'with an error'} ({detail}). Check the repository name and try again."
    if _is_network_error(exc):
        reason = str(exc).splitlines()[0][:200] if str(exc).strip() else "no answer"
        return (f"Could not reach {host} ({type(exc).__name__}: {reason}). "
                "This machine has no working connection to the Hugging Face Hub: check the network or proxy "
                "(HTTPS_PROXY), or download the zip / Space and upload it from a machine that has one.")
    return f"Pushing to {host} failed ({type(exc).__name__}: {str(exc)[:300]}). Try again later."


def _is_network_error(exc: Exception) -> bool:
    try:
        import httpx2 as httpx  # what huggingface_hub 2 uses
    except ImportError:  # pragma: no cover - older huggingface_hub
        import httpx
    return isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError, OSError))


def push_to_hub(run: RunRecord, repo_id: str, *, token: str | None, private: bool = False,
                kind: PushKind = "model") -> str:
    """push_model, returning only the repository's web address (what the Share tab shows)."""
    return push_model(run, repo_id, token, kind, private=private).url
