"""Push test images to a registry (plain httpx, no docker engine) or write OCI layouts.

Images are built by ``reconciler.feeds.ocilayout.build_image`` so a pushed image and
a layout image with the same arguments have the same digest.
"""

from __future__ import annotations

import base64
from collections.abc import Generator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from reconciler.feeds.oci import MANIFEST_ACCEPT, parse_challenge
from reconciler.feeds.ocilayout import BuiltImage, build_image, write_image


class RegistryAuth(httpx.Auth):
    """Answers a registry's Basic or Bearer challenge with a user name and password.

    Test-side only (for pushing); the client under test has its own implementation.
    Tokens are requested for exactly the scope the challenge names.
    """

    def __init__(self, username: str | None, password: str | None) -> None:
        self.username = username
        self.password = password
        self._tokens: dict[str, str] = {}

    def _basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        if response.status_code != 401:
            return
        challenge = parse_challenge(response.headers.get("www-authenticate", ""))
        if challenge is None:
            return
        if challenge.scheme == "basic":
            request.headers["Authorization"] = self._basic()
            yield request
            return
        params: list[tuple[str, str | int | float | bool | None]] = [("service", challenge.service)]
        params.extend(("scope", scope) for scope in challenge.scopes)
        token_request = httpx.Request("GET", httpx.URL(challenge.realm, params=params))
        if self.username is not None:
            token_request.headers["Authorization"] = self._basic()
        token_response = yield token_request
        token_response.read()
        token_response.raise_for_status()
        document = token_response.json()
        request.headers["Authorization"] = "Bearer " + (
            document.get("token") or document["access_token"]
        )
        yield request


def _upload_blob(client: httpx.Client, base_url: str, repo: str, data: bytes, digest: str) -> None:
    if client.head(f"{base_url}/v2/{repo}/blobs/{digest}").status_code == 200:
        return
    started = client.post(f"{base_url}/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = httpx.URL(base_url).join(started.headers["location"])
    finished = client.put(
        location.copy_merge_params({"digest": digest}),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert finished.status_code == 201, finished.text


def push_built(client: httpx.Client, base_url: str, repo: str, tag: str, image: BuiltImage) -> str:
    """Upload every blob and child manifest of ``image``, then tag it; returns its digest."""
    for blob in image.blobs:
        _upload_blob(client, base_url, repo, blob.data, blob.digest)
    for child in image.children:
        _put_manifest(client, base_url, repo, child.digest, child.data, child.media_type)
    response = _put_manifest(
        client, base_url, repo, tag, image.manifest.data, image.manifest.media_type
    )
    assert response.headers["docker-content-digest"] == image.digest
    return image.digest


def _put_manifest(
    client: httpx.Client, base_url: str, repo: str, ref: str, data: bytes, media_type: str
) -> httpx.Response:
    response = client.put(
        f"{base_url}/v2/{repo}/manifests/{ref}",
        content=data,
        headers={"Content-Type": media_type},
    )
    assert response.status_code == 201, response.text
    return response


def image_kwargs(
    *,
    created: datetime | None = None,
    content: bytes | None = None,
    platform_index: bool = False,
    config_media_type: str | None = None,
    docker: bool = False,
    platforms: Sequence[str] | None = None,
    platform_created: Mapping[str, datetime] | None = None,
    attestation: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Map the fixture's push options onto ``build_image`` arguments."""
    if platforms is None:
        platforms = ("linux/amd64", "linux/arm64/v8") if platform_index else ("linux/amd64",)
    return {
        "created": created,
        "content": content,
        "platforms": tuple(platforms),
        "index": platform_index,
        "docker": docker,
        "config_media_type": config_media_type,
        "platform_created": platform_created,
        "attestation": attestation,
        "annotations": annotations,
    }


def push_image(client: httpx.Client, base_url: str, repo: str, tag: str, **options: Any) -> str:
    """Build an image from ``image_kwargs`` options and push it as ``repo:tag``."""
    return push_built(client, base_url, repo, tag, build_image(**image_kwargs(**options)))


def delete_manifest(client: httpx.Client, base_url: str, repo: str, digest: str) -> None:
    """Delete by digest (distribution 2.8 refuses deletes by tag); removes all its tags."""
    response = client.delete(
        f"{base_url}/v2/{repo}/manifests/{digest}", headers={"Accept": MANIFEST_ACCEPT}
    )
    assert response.status_code == 202, response.text


def write_layout(root: Path, repo: str, tag: str, **options: Any) -> str:
    """Write an image into the per-repository layout ``root/repo``; returns its digest."""
    return write_image(root / repo, tag, build_image(**image_kwargs(**options)))
