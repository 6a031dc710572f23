"""Artifact records: the request model, stable ids, and the YAML written to git (pure)."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import queue
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from ruamel.yaml import YAML

from bot import bounded_yaml
from bot.manifests.flat_yaml import render_flat

API_VERSION = "ritmo.dev/v1"
RECORDS_DIR = "artifacts"

NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$"
# One line of printable ASCII: values may end up in commit trailers.
_LINE = r"^[\x20-\x7e]*$"
_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})|@(?P<digest>sha256:[0-9a-f]{64}))$"
)

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Version = Annotated[str, StringConstraints(pattern=VERSION_PATTERN)]
Line = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=_LINE)]
MetaKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]
MetaValue = Annotated[str, StringConstraints(max_length=1024, pattern=_LINE)] | int | float | bool


class ArtifactSpec(BaseModel):
    """What CI sends to register an artifact (POST /api/v1/artifacts)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    name: Name = Field(description="The app the artifact belongs to, a DNS-label-like slug.")
    version: Version | None = Field(
        default=None, description="Version; defaults to metadata.version."
    )
    build_id: Line
    storage_url: Line | None = None
    image: str | None = Field(default=None, description="repo:tag or repo@sha256:<digest>")
    checksum: Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
    metadata: dict[MetaKey, MetaValue] = Field(default_factory=dict, max_length=64)
    signature: Annotated[str, StringConstraints(max_length=16384)] | None = Field(
        default=None, description="ASCII-armoured detached OpenPGP signature over `checksum`."
    )

    @field_validator("version")
    @classmethod
    def _no_dotdot(cls, value: str | None) -> str | None:
        if value is not None and ".." in value:
            raise ValueError("must not contain '..'")
        if value is not None and value.endswith("."):
            raise ValueError("must not end with '.' (1.2.3. would read as 1.2.3)")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and not _IMAGE.match(value):
            raise ValueError("must be repo:tag or repo@sha256:<64 hex>, e.g. ghcr.io/acme/web:1.2")
        return value

    def resolved_version(self) -> str:
        """The explicit version, or metadata.version when only that is given."""
        if self.version is not None:
            return self.version
        meta = self.metadata.get("version")
        if (
            isinstance(meta, str)
            and re.match(VERSION_PATTERN, meta)
            and ".." not in meta
            and meta[-1] != "."
        ):
            return meta
        raise ValueError("version is required (or metadata.version as a safe version string)")

    def fields(self) -> dict[str, Any]:
        """The submitted content that identifies a registration, for idempotency checks.

        The signature is left out: signing the same checksum again gives new bytes, and a
        CI job that is re-run must get its 200, not a 409.
        """
        return {
            "name": self.name,
            "version": self.resolved_version(),
            "build_id": self.build_id,
            "storage_url": self.storage_url,
            "image": self.image,
            "checksum": self.checksum,
            "metadata": dict(self.metadata),
        }


def artifact_id(name: str, version: str) -> str:
    """Stable id from name and version: the same artifact always has the same id."""
    return "art-" + hashlib.sha256(f"{name}\0{version}".encode()).hexdigest()[:20]


def record_path(name: str, version: str) -> str:
    return f"{RECORDS_DIR}/{name}/{version}.yaml"


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """repo, tag, digest of an image reference validated by ArtifactSpec."""
    match = _IMAGE.match(image)
    if not match:
        raise ValueError(f"{image!r} is not an image reference")
    return match["repo"], match["tag"], match["digest"]


def build_record(
    spec: ArtifactSpec, signature: dict[str, Any], created_at: datetime
) -> dict[str, Any]:
    version = spec.resolved_version()
    record: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Artifact",
        "id": artifact_id(spec.name, version),
        "name": spec.name,
        "version": version,
        "build_id": spec.build_id,
    }
    if spec.storage_url is not None:
        record["storage_url"] = spec.storage_url
    if spec.image is not None:
        record["image"] = spec.image
    record["checksum"] = spec.checksum
    record["metadata"] = dict(spec.metadata)
    record["created_at"] = created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    record["signature"] = signature
    return record


# A YAML object is not thread-safe, and building one costs more than the record (it scans
# its plug-in directory every time): request threads borrow them from these pools.
_dumpers: queue.SimpleQueue[YAML] = queue.SimpleQueue()


def _dumper() -> YAML:
    try:
        return _dumpers.get_nowait()
    except queue.Empty:
        dumper = YAML(typ="safe", pure=False)  # the C emitter when ruamel.yaml.clib is there
        dumper.default_flow_style = False
        dumper.width = 4096  # a checksum stays on its key's line
        dumper.representer.sort_base_mapping_type_on_output = False  # apiVersion, kind first
        return dumper


# Records rendered lately, by their bytes: the index and the outbox read back what was
# just written, and parsing YAML costs several times what rendering it does.
_RENDERED: OrderedDict[bytes, Callable[[], dict[str, Any]]] = OrderedDict()
_RENDERED_LIMIT = 1024
_rendered_lock = threading.Lock()


def render_record(record: dict[str, Any]) -> bytes:
    text = render_flat(record)
    if text is None:
        buf = io.StringIO()
        dumper = _dumper()
        try:
            dumper.dump(record, buf)
        finally:
            _dumpers.put(dumper)
        text = buf.getvalue()
    data = text.encode()
    copied = _copy_of(record)
    with _rendered_lock:
        _RENDERED[data] = copied
        if len(_RENDERED) > _RENDERED_LIMIT:
            _RENDERED.popitem(last=False)
    return data


def _copy_of(record: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """A maker of fresh copies: from JSON text when the record is plain JSON (several
    times cheaper than copy.deepcopy, which the index and the outbox paid per record)."""
    try:
        text = json.dumps(record)
    except (TypeError, ValueError):
        kept = copy.deepcopy(record)
        return lambda: copy.deepcopy(kept)
    copied: dict[str, Any] = json.loads(text)
    if copied != record:  # a tuple, a non-str key: JSON would not give it back
        kept = copy.deepcopy(record)
        return lambda: copy.deepcopy(kept)
    return lambda: json.loads(text)


def parse_record(data: bytes, source: str = "artifact record") -> dict[str, Any]:
    with _rendered_lock:
        known = _RENDERED.get(data)
    if known is not None:
        return known()
    loaded = bounded_yaml.load(data, source)
    if not isinstance(loaded, dict) or loaded.get("kind") != "Artifact":
        raise ValueError("not an Artifact record")
    return loaded


def record_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The submitted content a record was written from (inverse of ArtifactSpec.fields)."""
    return {
        "name": record["name"],
        "version": record["version"],
        "build_id": record["build_id"],
        "storage_url": record.get("storage_url"),
        "image": record.get("image"),
        "checksum": record["checksum"],
        "metadata": dict(record.get("metadata") or {}),
    }
