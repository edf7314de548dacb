"""A client generated from the relay's own ``/openapi.json`` works: ``openapi-python-client``
(a popular generator, pure Python, offline once installed) builds a typed client from the
document a real relay serves, and that client creates a task in the neutral form, the
relay's signed callback parses as the document's ``TaskSucceededEvent``, the task is listed
as succeeded, and a subscription made with ``target_url`` is deleted (the ``{"deleted":
true}`` answer a ``const: true`` once made generated clients refuse).

The generator needs another httpx than the relay's, so it lives in a venv of its own, made
once per machine in pytest's cache directory (built aside, then renamed into place, so two
runs at once do not trip over each other), and the generated client runs there too.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.e2e.harness import (
    Receiver,
    RelayServer,
    eventually,
    free_port,
    relay_config,
    write_config,
)

# Alone (after the parallel phase): building the generator's environment (pip, npm) takes
# both cores for a while, which starves the timing proofs of the tests beside it.
pytestmark = [pytest.mark.slow, pytest.mark.alone]

GENERATOR = "openapi-python-client==0.29.1"
"""Pinned: a new release may generate differently; move it on deliberately."""

FLOW = """
import json
import sys

from relay_client import AuthenticatedClient
from relay_client.api.subscriptions import subscriptions_create, subscriptions_delete
from relay_client.api.tasks import tasks_create, tasks_list
from relay_client.models import (
    CreateSubscription,
    CreateTask,
    Deleted,
    NeutralForm,
    SubscriptionWithSecret,
    Task,
    TaskPage,
    TaskSucceededEvent,
)

step, base_url, api_key = sys.argv[1:4]
client = AuthenticatedClient(base_url=base_url, token=api_key, raise_on_unexpected_status=True)
if step == "create":
    body = CreateTask(
        provider="sandbox",
        input_=NeutralForm(model="seedance-2.0-fast", prompt="a fox in snow", duration=5),
        callback_url=sys.argv[4],
        reference="generated-client",
    )
    task = tasks_create.sync(client=client, body=body, idempotency_key="generated-1")
    assert isinstance(task, Task), task
    print(json.dumps({"id": task.id, "status": task.status.value}))
elif step == "list":
    with open(sys.argv[4], encoding="utf-8") as f:
        event = TaskSucceededEvent.from_dict(json.load(f))
    page = tasks_list.sync(client=client, reference="generated-client")
    assert isinstance(page, TaskPage), page
    made = subscriptions_create.sync(client=client, body=CreateSubscription(target_url=sys.argv[5]))
    assert isinstance(made, SubscriptionWithSecret), made
    gone = subscriptions_delete.sync(client=client, sub_id=made.id)
    assert isinstance(gone, Deleted), gone
    task = event.data
    listed = [{"id": t.id, "status": t.status.value, "video_url": t.video_url} for t in page.data]
    print(json.dumps({
        "event": {"type": event.type_.value, "task": task.id, "status": task.status.value},
        "listed": listed,
        "subscription": made.url,
        "deleted": [gone.id, gone.deleted],
    }))
"""


@pytest.fixture(scope="module")
def generator(request: pytest.FixtureRequest) -> Path:
    """The python of a venv holding the generator (and so httpx and attrs, all a generated
    client needs)."""
    cache = request.config.cache
    assert cache is not None, "pytest's cache provider is off (-p no:cacheprovider)"
    home = cache.mkdir("generator-venvs")
    tag = (
        f"{re.sub(r'[^A-Za-z0-9.]+', '-', GENERATOR)}-py{sys.version_info[0]}{sys.version_info[1]}"
    )
    venv = home / tag
    if not (venv / "ready").exists():
        staging = Path(tempfile.mkdtemp(dir=home, prefix=".building-"))
        try:
            subprocess.run([sys.executable, "-m", "venv", str(staging)], check=True, timeout=120)
            pip = [str(staging / "bin" / "python"), "-m", "pip", "install", "--quiet"]
            installed = subprocess.run(
                [*pip, "--disable-pip-version-check", GENERATOR],
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert installed.returncode == 0, f"pip install {GENERATOR}:\n{installed.stderr}"
            (staging / "ready").touch()
            # A venv's python finds its packages from where it stands, so one built aside
            # works once renamed (only its console scripts keep the old path: unused).
            staging.rename(venv)
        except OSError:
            if not (venv / "ready").exists():  # not another run that got there first
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return venv / "bin" / "python"


async def run(*args: str | Path, cwd: Path) -> str:
    """A process with the environment a fresh shell would give it (not this venv's)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    proc = await asyncio.create_subprocess_exec(
        *map(str, args),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, f"{' '.join(map(str, args))}:\n{err.decode()}\n{out.decode()}"
    return out.decode()


async def test_a_generated_python_client_creates_is_called_back_and_lists(
    generator: Path, tmp_path: Path
) -> None:
    config = relay_config(tmp_path, free_port())
    relay = await RelayServer(config, write_config(tmp_path, config)).start()
    receiver = await Receiver().start()
    try:
        account = await relay.account("generated")
        async with relay.client() as client:
            spec = await client.get("/openapi.json")
        (tmp_path / "openapi.json").write_bytes(spec.content)
        # The generator warns (on stderr) about the answers it has no type for, the video
        # bytes of /v1/outputs (*/*): what it generates for the rest is what matters.
        await run(
            generator,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            tmp_path / "openapi.json",
            "--output-path",
            tmp_path / "relay_client",
            "--meta",
            "none",
            cwd=tmp_path,
        )
        (tmp_path / "flow.py").write_text(FLOW)
        key = account.api_key
        created = json.loads(
            await run(generator, "flow.py", "create", relay.url, key, receiver.url, cwd=tmp_path)
        )
        assert created["status"] in ("queued", "running"), created

        async def succeeded() -> Any:
            for hook in receiver.requests:
                if hook.json()["type"] == "task.succeeded":
                    return hook
            return None

        hook = await eventually(succeeded, within=20, what="the task.succeeded callback")
        Webhook(account.secret).verify(hook.body, hook.headers)
        (tmp_path / "callback.json").write_bytes(hook.body)
        target = f"{receiver.base_url}/zapier"
        found = json.loads(
            await run(
                generator,
                "flow.py",
                "list",
                relay.url,
                key,
                "callback.json",
                target,
                cwd=tmp_path,
            )
        )
    finally:
        await receiver.stop()
        await relay.stop()
    assert found["event"] == {
        "type": "task.succeeded",
        "task": created["id"],
        "status": "succeeded",
    }
    [listed] = found["listed"]
    assert listed["id"] == created["id"], listed
    assert listed["status"] == "succeeded", listed
    assert listed["video_url"], listed
    assert found["subscription"] == target
    assert found["deleted"][1] is True
