"""TypeScript types generated from the document are usable: ``openapi-typescript`` (default
options) then ``tsc --strict`` on a program that writes the bodies a caller sends with only
the fields it needs. A ``"default": null`` once made openapi-typescript mark every optional
field required, so ``{"provider": "sandbox"}`` did not type-check; a boolean ``const`` made
``{"deleted": true}`` a type of its own. The ``@ts-expect-error`` lines prove the compiler
does check: each must be an error, or tsc fails.

Node and npm come from the machine (skipped without them); the two npm packages are
installed once into pytest's cache directory, pinned."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from relay.api.openapi import document

# Alone (after the parallel phase): building the generator's environment (pip, npm) takes
# both cores for a while, which starves the timing proofs of the tests beside it.
pytestmark = [pytest.mark.slow, pytest.mark.alone]

PACKAGES = ("openapi-typescript@7.13.0", "typescript@5.9.3")

PROGRAM = """
import type { components } from "./relay";
type S = components["schemas"];

// Only what is required: every optional field stays optional.
export const minimal: S["CreateTask"] = { provider: "sandbox" };
export const tracked: S["CreateTask"] = { provider: "sandbox", provider_task_id: "cgt-1" };
export const neutral: S["CreateTask"] = {
  provider: "sandbox",
  input: {
    model: "seedance-2.0",
    prompt: "a fox in snow",
    images: ["https://example.com/a.png", { url: "https://example.com/b.png", role: "last_frame" }],
    duration: 5,
  },
};
export const native: S["CreateTask"] = {
  provider: "sandbox",
  input: { model: "m", content: [{ type: "text", text: "a fox" }] },
  input_format: "native",
};
export const zapier: S["CreateSubscription"] = { target_url: "https://example.com/hook" };
export const replay: S["ReplayRequest"] = { all: true };
export const enable: S["EnableSubscription"] = {};
export const deleted: S["Deleted"] = { id: "sub_1", deleted: true };
export const resolved: S["ResolveSubmission"] = { abandon: true };
export function onHook(event: S["TaskSucceededEvent"]): string | null {
  return event.data.video_url;
}

// @ts-expect-error: provider is required
export const noProvider: S["CreateTask"] = {};
// @ts-expect-error: a task.succeeded envelope has that type only
export const wrongType: S["TaskSucceededEvent"]["type"] = "task.failed";
// @ts-expect-error: the neutral form knows its ratios
export const ratio: S["NeutralForm"]["ratio"] = "2:1";
"""


@pytest.fixture(scope="module")
def npm_bin(request: pytest.FixtureRequest) -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed")
    cache = request.config.cache
    assert cache is not None, "pytest's cache provider is off (-p no:cacheprovider)"
    home = cache.mkdir("npm-generators")
    prefix = home / "-".join(p.replace("@", "-") for p in PACKAGES)
    if not (prefix / "ready").exists():
        staging = Path(tempfile.mkdtemp(dir=home, prefix=".building-"))
        try:
            installed = subprocess.run(
                ["npm", "install", "--prefix", str(staging), "--no-audit", "--no-fund", *PACKAGES],
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert installed.returncode == 0, f"npm install:\n{installed.stderr}"
            (staging / "ready").touch()
            staging.rename(prefix)  # node_modules/.bin links are relative: they move along
        except OSError:
            if not (prefix / "ready").exists():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return prefix / "node_modules" / ".bin"


def run(*args: str | Path, cwd: Path) -> None:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{args[0]}:\n{done.stdout}\n{done.stderr}"


def test_typescript_types_type_check_the_bodies_a_caller_sends(
    npm_bin: Path, tmp_path: Path
) -> None:
    (tmp_path / "openapi.json").write_text(json.dumps(document()))
    run(npm_bin / "openapi-typescript", "openapi.json", "-o", "relay.d.ts", cwd=tmp_path)
    (tmp_path / "check.ts").write_text(PROGRAM)
    run(npm_bin / "tsc", "--strict", "--noEmit", "check.ts", cwd=tmp_path)
