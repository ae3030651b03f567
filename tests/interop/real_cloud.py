"""A real cloud for the interop tier: Keystone 30 and Glance 33 behind keystonemiddleware, from
shared/peers/real-keystone (its virtualenv ``KS_VENV``, default /tmp/real-keystone/venv, is built on first start).

``start_real_cloud`` starts both on free loopback ports with a fresh data directory and returns a ``RealCloud``:
the two URLs, the peer's clouds.yaml, and the admin's own calls to the real Identity and Image APIs that set up
and check what the front ends under test do (create and upload an image, read a node's cache).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .conftest import free_port

PEER = Path(__file__).resolve().parents[2].parent / "shared" / "peers" / "real-keystone"
KS_VENV = Path(os.environ.get("KS_VENV", "/tmp/real-keystone/venv"))
BIN = Path(sys.executable).parent  # this project's virtualenv: our `glance` and `openstack` with our plugin


def peer_missing() -> str:
    """Why the real cloud cannot run here ("" when it can)."""
    if not (PEER / "start.sh").exists():
        return f"real Keystone peer not found at {PEER}"
    return ""


@dataclass
class RealCloud:
    keystone_url: str  # http://127.0.0.1:PORT/v3
    glance_url: str
    root: Path  # the peer's data directory (clouds.yaml, logs)
    ports: tuple[int, int]
    admin_token: str = ""

    @property
    def clouds_yaml(self) -> Path:
        return self.root / "clouds.yaml"

    def peer_env(self) -> dict[str, str]:
        return {**os.environ, "KS_ROOT": str(self.root), "KS_VENV": str(KS_VENV)}

    def password_env(self, user: str = "admin") -> dict[str, str]:
        """The OS_* variables of the peer's openrc files for ``admin`` or ``demo`` (password = user name)."""
        return {
            "OS_AUTH_URL": self.keystone_url,
            "OS_IDENTITY_API_VERSION": "3",
            "OS_USERNAME": user,
            "OS_PASSWORD": user,
            "OS_PROJECT_NAME": user,
            "OS_USER_DOMAIN_NAME": "Default",
            "OS_PROJECT_DOMAIN_NAME": "Default",
            "OS_REGION_NAME": "RegionOne",
        }

    # -- the admin's own calls to the real APIs (set-up and checks, not the code under test) --------------

    def issue_admin_token(self) -> str:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": "admin"}},
                },
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
            }
        }
        response = httpx.post(f"{self.keystone_url}/auth/tokens", json=body, timeout=60)
        response.raise_for_status()
        self.admin_token = response.headers["X-Subject-Token"]
        return self.admin_token

    def _glance(
        self, method: str, path: str, *, json: object = None, content: bytes | None = None, content_type: str = ""
    ) -> httpx.Response:
        headers = {"X-Auth-Token": self.admin_token}
        if content_type:
            headers["Content-Type"] = content_type
        response = httpx.request(
            method, f"{self.glance_url}{path}", headers=headers, json=json, content=content, timeout=60
        )
        response.raise_for_status()
        return response

    def create_image(self, name: str, content: bytes, visibility: str = "private") -> str:
        """Create an image and upload its bytes through the real Image API; returns its id."""
        created = self._glance(
            "POST",
            "/v2/images",
            json={"name": name, "disk_format": "raw", "container_format": "bare", "visibility": visibility},
        ).json()
        image_id = str(created["id"])
        self._glance(
            "PUT", f"/v2/images/{image_id}/file", content=content, content_type="application/octet-stream"
        )
        return image_id

    def cache(self) -> dict[str, Any]:
        """Glance's own answer to GET /v2/cache, read as the admin."""
        body: dict[str, Any] = self._glance("GET", "/v2/cache").json()
        return body

    def cached_ids(self) -> set[str]:
        return {str(entry["image_id"]) for entry in self.cache()["cached_images"]}

    def queue_as_admin(self, image_id: str) -> None:
        self._glance("PUT", f"/v2/cache/{image_id}")


def start_real_cloud(root: Path) -> RealCloud:
    ks_port, glance_port = free_port(), free_port()
    while glance_port == ks_port:
        glance_port = free_port()
    cloud = RealCloud(
        f"http://127.0.0.1:{ks_port}/v3", f"http://127.0.0.1:{glance_port}", root, (ks_port, glance_port)
    )
    done = subprocess.run(
        ["bash", str(PEER / "start.sh"), str(ks_port), str(glance_port)],
        env=cloud.peer_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        if done.returncode != 0:
            raise RuntimeError(f"real Keystone/Glance did not start: {done.stderr[-3000:]}")
        cloud.issue_admin_token()
    except BaseException:
        stop_real_cloud(cloud)  # whatever half of it is up
        raise
    return cloud


def stop_real_cloud(cloud: RealCloud) -> None:
    subprocess.run(
        ["bash", str(PEER / "stop.sh"), *map(str, cloud.ports)],
        env=cloud.peer_env(),
        capture_output=True,
        timeout=120,
    )
