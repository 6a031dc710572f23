"""promotions/pin.py as a table: what pinning a record writes, reads and refuses (no git)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.policy.model import AppTarget
from bot.promotions.pin import PinError, current_value, pin, pinned_value
from bot.store.artifact_record import ArtifactRecord

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
REPO = "registry.example/web"


def record(image: str | None) -> ArtifactRecord:
    return ArtifactRecord("art-1", "web", "1.2.3", "2026-12-04T10:00:00Z", image=image)


def target(**fields: Any) -> AppTarget:
    return AppTarget.model_validate(fields)


@pytest.mark.parametrize(
    ("fields", "image", "expected"),
    [
        ({}, f"{REPO}:1.2.3", "1.2.3"),
        ({}, f"{REPO}@{DIGEST}", DIGEST),
        ({"field": "newTag"}, f"{REPO}:1.2.3", "1.2.3"),
        ({"field": "digest"}, f"{REPO}@{DIGEST}", DIGEST),
        ({"kind": "helm"}, f"{REPO}:1.2.3", "1.2.3"),
        # Helm sets one value, the digest when that is all the image has.
        ({"kind": "helm"}, f"{REPO}@{DIGEST}", DIGEST),
        # An image registry with a port is still the repo, not a tag.
        ({}, "localhost:5000/web:7", "7"),
        ({"image": "web"}, f"{REPO}:1.2.3", "1.2.3"),
    ],
)
def test_pinned_value(fields: dict[str, Any], image: str, expected: str) -> None:
    assert pinned_value(target(**fields), record(image)) == expected


@pytest.mark.parametrize(
    ("fields", "image", "says"),
    [
        ({}, None, "has no image; register it with `image`"),
        ({}, "", "has no image"),
        ({"field": "digest"}, f"{REPO}:1.2.3", "field is digest but"),
        ({"field": "newTag"}, f"{REPO}@{DIGEST}", "field is newTag but"),
        ({"kind": "helm", "field": "digest"}, f"{REPO}:1.2.3", "has no @sha256 digest"),
        # Tag and digest together is not an image reference Ritmo accepts.
        ({}, f"{REPO}:1.2.3@{DIGEST}", None),
    ],
)
def test_refusals_name_the_fix(fields: dict[str, Any], image: str | None, says: str | None) -> None:
    # PinError is a ValueError; a malformed reference raises the plain ValueError.
    error = PinError if says else ValueError
    for call in (
        lambda: pinned_value(target(**fields), record(image)),
        lambda: pin(target(**fields), "", record(image)),
    ):
        with pytest.raises(error, match=re.escape(says or "is not an image reference")):
            call()


KUSTOMIZATION = f"""\
resources:
- ../../base
images:
- name: {REPO}  # the web image
  newTag: 1.0.0
"""


@pytest.mark.parametrize(
    ("fields", "text", "image", "wanted"),
    [
        # A new tag replaces the old one in place, the comment kept.
        ({}, KUSTOMIZATION, f"{REPO}:1.2.3", f"- name: {REPO}  # the web image\n  newTag: 1.2.3\n"),
        # A digest replaces the tag key at its position.
        ({}, KUSTOMIZATION, f"{REPO}@{DIGEST}", f"  digest: {DIGEST}\n"),
        # An empty overlay gets an images entry.
        ({}, "", f"{REPO}:1.2.3", f"images:\n- name: {REPO}\n  newTag: 1.2.3\n"),
        # `image` names the kustomize entry, not the registry repo.
        ({"image": "web"}, "", f"{REPO}:2.0.0", "- name: web\n  newTag: 2.0.0\n"),
        # A tag that reads as a number stays a string.
        ({}, "", f"{REPO}:1.10", 'newTag: "1.10"\n'),
        ({"kind": "helm"}, "replicas: 2\n", f"{REPO}:1.2.3", "image:\n  tag: 1.2.3\n"),
        (
            {"kind": "helm", "key": "web.image.tag"},
            "",
            f"{REPO}:1.2.3",
            "web:\n  image:\n    tag: 1.2.3\n",
        ),
    ],
)
def test_pin_writes_and_reads_back(
    fields: dict[str, Any], text: str, image: str, wanted: str
) -> None:
    t = target(**fields)
    out = pin(t, text, record(image))
    assert wanted in out
    assert current_value(t, out, REPO) == pinned_value(t, record(image))


def test_pin_keeps_the_other_lines() -> None:
    out = pin(target(), KUSTOMIZATION, record(f"{REPO}@{DIGEST}"))
    assert out.startswith("resources:\n- ../../base\nimages:\n")
    assert "newTag" not in out


@pytest.mark.parametrize(
    ("fields", "text", "expected"),
    [
        ({}, KUSTOMIZATION, "1.0.0"),
        ({}, f"images:\n- name: {REPO}\n  digest: {OTHER}\n", OTHER),
        ({}, "images:\n- name: other\n  newTag: 9\n", None),
        ({}, "", None),
        ({}, "# only a comment\n", None),
        ({"image": "web"}, "images:\n- name: web\n  newTag: 3.0.0\n", "3.0.0"),
        ({"kind": "helm"}, "image:\n  tag: 1.2.3\n", "1.2.3"),
        ({"kind": "helm"}, "image:\n  repository: x\n", None),
        ({"kind": "helm"}, "image: flat\n", None),
    ],
)
def test_current_value(fields: dict[str, Any], text: str, expected: str | None) -> None:
    assert current_value(target(**fields), text, REPO) == expected
