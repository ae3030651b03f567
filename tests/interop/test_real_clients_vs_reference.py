"""The real python-glanceclient 4.13 and OSC 10.5 see the reference server exactly as they see Glance 33.

One scenario (create and upload images through the image API, then run every cache command of both real clients,
good and bad cases) runs against a fresh real Glance 33 and a fresh reference node at the same time. Every command
is reduced to (exit code, stdout, stderr) with image ids, times, request ids and node URLs replaced by placeholders
of the same width (so table layouts still compare), and each step is one test: the two must be equal. The clients
come from the real-glance peer's virtualenv (``RG_VENV``, default /tmp/real-glance/venv), never from ours.

    GLANCECACHE_INTEROP=1 .venv/bin/pytest tests/interop -q
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .conftest import VENV, RealGlance

UNKNOWN = "00000000-0000-4000-8000-000000000000"
IMAGE_BYTES = 64 * 1024
WAIT_SECONDS = 60.0

Outcome = tuple[int, str, str]  # exit code, normalized stdout, normalized stderr


@dataclass(frozen=True)
class Run:
    """Run a real client command; ``{A}``-style fields in ``args`` become the node's image ids."""

    label: str
    tool: str  # "glance" | "openstack"
    args: tuple[str, ...]


@dataclass(frozen=True)
class Do:
    """A set-up action through the HTTP API between commands (its outcome is compared too)."""

    label: str
    action: str  # "wait_cached" | "download" | "legacy_queue"
    image: str


Step = Run | Do


def glance(label: str, *args: str) -> Run:
    return Run(label, "glance", args)


def osc(label: str, *args: str) -> Run:
    return Run(label, "openstack", ("cached", "image", *args))


SCENARIO: tuple[Step, ...] = (
    glance("glance cache-list (empty)", "cache-list"),
    osc("openstack cached image list (empty)", "list"),
    glance("glance cache-queue A", "cache-queue", "{A}"),
    Do("wait until A is cached", "wait_cached", "A"),
    glance("glance cache-list (A cached)", "cache-list"),
    glance("glance cache-queue Q (image status queued)", "cache-queue", "{Q}"),
    glance("glance cache-queue UNKNOWN", "cache-queue", "{UNKNOWN}"),
    glance("glance cache-queue B UNKNOWN (one good, one bad)", "cache-queue", "{B}", "{UNKNOWN}"),
    Do("wait until B is cached", "wait_cached", "B"),
    glance("glance cache-nodes-list A (cached)", "cache-nodes-list", "{A}"),
    glance("glance cache-nodes-list C (active, not cached)", "cache-nodes-list", "{C}"),
    glance("glance cache-nodes-list UNKNOWN", "cache-nodes-list", "{UNKNOWN}"),
    Do("download B (cache hit 1)", "download", "B"),
    Do("download B (cache hit 2)", "download", "B"),
    Do("legacy PUT /v2/queued_images/Q", "legacy_queue", "Q"),
    glance("glance cache-list (A, B hits 2, Q queued)", "cache-list"),
    osc("openstack cached image list (A, B, Q)", "list"),
    osc("openstack cached image list -f json", "list", "-f", "json"),
    glance("glance cache-delete A", "cache-delete", "{A}"),
    glance("glance cache-delete C (image exists, not cached)", "cache-delete", "{C}"),
    glance("glance cache-delete UNKNOWN", "cache-delete", "{UNKNOWN}"),
    osc("openstack cached image queue C", "queue", "{C}"),
    Do("wait until C is cached", "wait_cached", "C"),
    osc("openstack cached image queue interop-a (by name)", "queue", "interop-a"),
    Do("wait until A is cached again", "wait_cached", "A"),
    osc("openstack cached image queue Q (image status queued)", "queue", "{Q}"),
    osc("openstack cached image queue UNKNOWN", "queue", "{UNKNOWN}"),
    osc("openstack cached image list (A, B, C, Q)", "list"),
    osc("openstack cached image delete C", "delete", "{C}"),
    osc("openstack cached image delete UNKNOWN", "delete", "{UNKNOWN}"),
    glance("glance cache-clear --target invalid (argparse)", "cache-clear", "--target", "invalid"),
    glance("glance cache-clear --target queue", "cache-clear", "--target", "queue"),
    glance("glance cache-list (after clearing the queue)", "cache-list"),
    glance("glance cache-clear --target cache", "cache-clear", "--target", "cache"),
    glance("glance cache-list (after clearing the cache)", "cache-list"),
    glance("glance cache-queue A (refill)", "cache-queue", "{A}"),
    Do("wait until A is cached (refill)", "wait_cached", "A"),
    Do("legacy PUT /v2/queued_images/Q (refill)", "legacy_queue", "Q"),
    osc("openstack cached image clear --queue", "clear", "--queue"),
    osc("openstack cached image list (after --queue)", "list"),
    osc("openstack cached image clear --cache", "clear", "--cache"),
    osc("openstack cached image list (after --cache)", "list"),
    glance("glance cache-queue B (refill)", "cache-queue", "{B}"),
    Do("wait until B is cached (refill)", "wait_cached", "B"),
    Do("legacy PUT /v2/queued_images/Q (before clear both)", "legacy_queue", "Q"),
    glance("glance cache-clear (default both)", "cache-clear"),
    glance("glance cache-list (after clearing both)", "cache-list"),
    osc("openstack cached image queue A (refill)", "queue", "{A}"),
    Do("wait until A is cached (before openstack clear)", "wait_cached", "A"),
    Do("legacy PUT /v2/queued_images/Q (before openstack clear)", "legacy_queue", "Q"),
    osc("openstack cached image clear (both)", "clear"),
    osc("openstack cached image list (after clear)", "list"),
    glance("glance cache-clean", "cache-clean"),
    glance("glance cache-prune", "cache-prune"),
    glance("glance cache-list (end)", "cache-list"),
)
LABELS = [step.label for step in SCENARIO]
assert len(set(LABELS)) == len(LABELS), "scenario labels must be unique"


def _client_env(home: Path) -> dict[str, str]:
    # The operator's own OS_* settings (clouds.yaml selection, tokens) must not leak into the comparison.
    env = {key: value for key, value in os.environ.items() if not key.startswith("OS_")}
    env["PYTHONWARNINGS"] = "ignore"
    # A fresh home per node: glanceclient's first run downloads the node's schemas into ~/.glanceclient, so a
    # shared home would let one node's schemas mask the other's.
    env["HOME"] = str(home)
    return env


def _same_width(placeholder: str, match: re.Match[str]) -> str:
    """A placeholder as wide as what it replaces, so table borders and padding still line up."""
    width = len(match.group(0))
    return placeholder[:width].ljust(width, "_")


_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})?")
_REQUEST_ID = re.compile(r"req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NODE_URL = re.compile(r"https?://127\.0\.0\.1:\d+")


def normalize(text: str, ids: dict[str, str]) -> str:
    for name, image_id in ids.items():
        text = text.replace(image_id, f"<{name}>".ljust(len(image_id), "_"))
    text = _REQUEST_ID.sub(lambda m: _same_width("req-<request id>", m), text)
    text = _TIME.sub(lambda m: _same_width("<time>", m), text)
    return _NODE_URL.sub(lambda m: _same_width("<node url>", m), text)


class Scenario:
    """The scenario against one node; ``run()`` returns label -> outcome."""

    def __init__(self, url: str, home: Path) -> None:
        self.url = url
        self.home = home
        self.http = httpx.Client(base_url=url, timeout=60)
        self.ids: dict[str, str] = {}

    def close(self) -> None:
        self.http.close()

    def create_image(self, name: str, data: bytes | None) -> str:
        created = self.http.post("/v2/images", json={"name": name, "container_format": "bare", "disk_format": "raw"})
        assert created.status_code == 201, f"{self.url}: POST /v2/images -> {created.status_code} {created.text}"
        image_id = str(created.json()["id"])
        if data is not None:
            uploaded = self.http.put(
                f"/v2/images/{image_id}/file", content=data, headers={"Content-Type": "application/octet-stream"}
            )
            assert uploaded.status_code == 204, f"{self.url}: upload -> {uploaded.status_code} {uploaded.text}"
        return image_id

    def run(self) -> dict[str, Outcome]:
        for name in "ABC":
            self.ids[name] = self.create_image(f"interop-{name.lower()}", bytes([ord(name)]) * IMAGE_BYTES)
        self.ids["Q"] = self.create_image("interop-q", None)
        format_ids = {**self.ids, "UNKNOWN": UNKNOWN}
        outcomes: dict[str, Outcome] = {}
        for step in SCENARIO:
            if isinstance(step, Run):
                outcomes[step.label] = self.command(step.tool, [arg.format(**format_ids) for arg in step.args])
            else:
                outcomes[step.label] = (0, self.act(step.action, step.image), "")
        return outcomes

    def command(self, tool: str, args: list[str]) -> Outcome:
        if tool == "glance":
            argv = [str(VENV / "bin" / "glance"), "--os-image-url", self.url, "--os-auth-token", "fake", *args]
        else:
            argv = [str(VENV / "bin" / "openstack"), "--os-auth-type", "none", "--os-endpoint", self.url, *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=_client_env(self.home))
        return done.returncode, normalize(done.stdout, self.ids), normalize(done.stderr, self.ids)

    def hits(self, image_id: str) -> int | None:
        """The image's hit count on this node, or None while it is not cached."""
        listing = self.http.get("/v2/cache").json()
        return next((int(row["hits"]) for row in listing["cached_images"] if row["image_id"] == image_id), None)

    def wait_until(self, predicate: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return False

    def act(self, action: str, name: str) -> str:
        image_id = self.ids[name]
        if action == "wait_cached":
            if self.wait_until(lambda: self.hits(image_id) is not None):
                return "cached"
            return f"not cached after {WAIT_SECONDS:g} s"
        if action == "download":
            hits_before = self.hits(image_id)
            response = self.http.get(f"/v2/images/{image_id}/file")
            outcome = f"{response.status_code}, {len(response.content)} bytes"
            if hits_before is None:
                return outcome
            # Glance counts the hit after the body has gone out; the next command must not race it.
            counted = self.wait_until(lambda: (self.hits(image_id) or 0) > hits_before)
            return f"{outcome}, hit {'counted' if counted else 'not counted'}"
        if action == "legacy_queue":
            response = self.http.put(f"/v2/queued_images/{image_id}")
            return f"{response.status_code} {response.text}"
        raise AssertionError(f"unknown action {action}")


def run_scenario(url: str, home: Path) -> dict[str, Outcome]:
    scenario = Scenario(url, home)
    try:
        return scenario.run()
    finally:
        scenario.close()


@dataclass
class Transcripts:
    glance33: dict[str, Outcome]
    reference: dict[str, Outcome]


@pytest.fixture(scope="module")
def transcripts(real_glance: RealGlance, tmp_path_factory: pytest.TempPathFactory) -> Transcripts:
    if not (VENV / "bin" / "glance").exists() or not (VENV / "bin" / "openstack").exists():
        pytest.fail(f"the real clients are missing from {VENV} (RG_VENV): expected bin/glance and bin/openstack")
    from glancecache_client.server.runner import run_cluster

    with run_cluster(nodes=1, auth="noauth", data_dir=tmp_path_factory.mktemp("reference")) as cluster:
        # Both nodes at once: the clients' start-up time dominates, and the nodes share nothing.
        with ThreadPoolExecutor(max_workers=2) as pool:
            glance_future = pool.submit(run_scenario, real_glance.url, tmp_path_factory.mktemp("home-glance33"))
            reference_future = pool.submit(run_scenario, cluster.urls[0], tmp_path_factory.mktemp("home-reference"))
            return Transcripts(glance_future.result(), reference_future.result())


def _show(outcome: Outcome) -> str:
    code, out, err = outcome
    return f"exit {code}\n--- stdout\n{out}--- stderr\n{err}"


@pytest.mark.parametrize("label", LABELS)
def test_same_result_as_glance33(transcripts: Transcripts, label: str) -> None:
    expected, actual = transcripts.glance33[label], transcripts.reference[label]
    assert actual == expected, f"{label}\n=== Glance 33\n{_show(expected)}\n=== reference server\n{_show(actual)}"


def test_scenario_reached_the_states_it_claims_on_glance33(transcripts: Transcripts) -> None:
    """Guards the comparison: on the real Glance the steps did what the recorded traffic says they do."""
    seen = transcripts.glance33
    assert all(seen[step.label][1] == "cached" for step in SCENARIO if isinstance(step, Do) and "wait" in step.label)
    code, out, _ = seen["glance cache-list (A, B hits 2, Q queued)"]
    assert code == 0
    assert re.search(r"\| <A>_+ \| cached \|", out) and re.search(r"\| <B>_+ \| cached \|.*\|\s+2\s+\|", out), out
    assert re.search(r"\| <Q>_+ \| queued \|\s+N/A", out), out
    code, _, err = seen["glance cache-queue Q (image status queued)"]
    assert code == 0 and "HTTP 400 Bad Request: Only images with status active can be targeted for queueing" in err
    code, _, err = seen["glance cache-delete UNKNOWN"]
    assert code == 0 and f"HTTP 404 Not Found: Image {UNKNOWN} not found." in err
    code, _, err = seen["glance cache-clear --target invalid (argparse)"]
    assert code == 2 and "invalid choice: 'invalid'" in err
    code, _, err = seen["openstack cached image queue Q (image status queued)"]
    assert code == 1 and "BadRequestException: 400" in err and "Failed to queue 1 of 1 images" in err
    code, _, err = seen["openstack cached image delete UNKNOWN"]
    assert code == 1 and f"No Image found for {UNKNOWN}" in err
    assert seen["glance cache-prune"][:2] == (0, "Pruned 0 file(s), 0 byte(s).\n")
    for label in ("glance cache-list (after clearing both)", "openstack cached image list (after clear)"):
        assert "cached" not in seen[label][1] and "queued" not in seen[label][1], seen[label]
    assert "| <node url>" in seen["glance cache-nodes-list A (cached)"][1]
