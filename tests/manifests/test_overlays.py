"""Round-trip overlay edits: kustomize images[] pins and Helm values key paths, on real YAML."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

import bot.manifests.overlays as overlays
from bot.manifests.overlays import (
    OverlayError,
    pin_kustomize_image,
    read_key_path,
    read_kustomize_image,
    set_key_path,
)
from bot.scaffold import SCAFFOLD_DIR, write_scaffold

WEB = "registry.example.com/acme/web"
API = "registry.example.com/acme/api"
WORKER = "registry.example.com/acme/worker"
DIGEST = "sha256:" + "0123456789abcdef" * 4
STAGING_REL = "apps/web/overlays/staging/kustomization.yaml"
STAGING = (SCAFFOLD_DIR / STAGING_REL).read_text()

# A hand-edited kustomization in ruamel's block style (sequences not indented), with
# full-line and end-of-line comments, a blank line, and all three quoting styles.
KUSTOMIZATION = """\
# Managed by hand; Ritmo pins images only.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: web-staging # the namespace
resources:
- ../../base

# Images below; keep them sorted.
images:
- name: registry.example.com/acme/api
  newTag: 'v7' # single quoted
- name: registry.example.com/acme/web
  newTag: "0.1.0" # pinned by Ritmo
- name: registry.example.com/acme/worker
  newTag: v2
commonAnnotations:
  team: platform # owner
"""

VALUES = """\
# Helm values for staging.
replicaCount: 2 # two is enough

image:
  repository: registry.example.com/acme/web
  # Ritmo pins this:
  tag: "0.1.0" # pinned
  pullPolicy: IfNotPresent
service:
  port: 80
"""

# Tags that a YAML 1.2 reader would take for a number, bool, null or date if left plain.
NUMBER_LIKE_TAGS = ["1.10", "2", "1.0", "010", "1e3", "0x1F", "true", "null", "2024-01-01"]
# Tags that YAML 1.1 readers (kustomize's and Helm's Go YAML) take for a number or bool.
YAML11_LOOKALIKE_TAGS = ["yes", "on", "y", "1_000", "0b101"]


def load(text: str) -> Any:
    return YAML(typ="safe").load(text)


def load_yaml11(text: str) -> Any:
    yaml = YAML(typ="safe")
    yaml.version = (1, 1)
    return yaml.load(text)


def entry(doc: Any, name: str) -> dict[str, Any]:
    matches = [e for e in doc["images"] if e["name"] == name]
    assert len(matches) == 1, doc["images"]
    return matches[0]


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    a, b = before.splitlines(), after.splitlines()
    assert len(a) == len(b), f"line count changed:\n{after}"
    return [(x, y) for x, y in zip(a, b, strict=True) if x != y]


class TestPinTag:
    """pin_kustomize_image with a tag changes only that value, in the user's style."""

    def test_rest_of_file_is_byte_identical(self) -> None:
        """Only the pinned value changes; comments, blank lines and other entries stay."""
        out = pin_kustomize_image(KUSTOMIZATION, WEB, tag="0.2.0")
        assert out == KUSTOMIZATION.replace('"0.1.0"', '"0.2.0"')

    def test_keeps_double_quotes(self) -> None:
        """A double-quoted tag stays double-quoted."""
        out = pin_kustomize_image(KUSTOMIZATION, WEB, tag="v9")
        (line,) = [ln for ln, _ in changed_lines(out, KUSTOMIZATION)]
        assert line.startswith('  newTag: "v9" ') and line.endswith(" # pinned by Ritmo")

    def test_keeps_single_quotes(self) -> None:
        """A single-quoted tag stays single-quoted."""
        out = pin_kustomize_image(KUSTOMIZATION, API, tag="v8")
        assert out == KUSTOMIZATION.replace("'v7'", "'v8'")

    def test_keeps_plain_style(self) -> None:
        """A plain tag stays plain when the new tag reads back as a string."""
        out = pin_kustomize_image(KUSTOMIZATION, WORKER, tag="v3")
        assert out == KUSTOMIZATION.replace("newTag: v2", "newTag: v3")

    def test_keeps_key_order(self) -> None:
        """Top-level keys and the keys of every entry keep their order."""
        out = pin_kustomize_image(KUSTOMIZATION, WEB, tag="0.2.0")
        before, after = load(KUSTOMIZATION), load(out)
        assert list(after) == list(before)
        assert [list(e) for e in after["images"]] == [list(e) for e in before["images"]]

    def test_keeps_full_line_and_end_of_line_comments(self) -> None:
        """Every comment of the original file is still there after the edit."""
        out = pin_kustomize_image(KUSTOMIZATION, WEB, tag="0.2.0")
        for comment in [
            "# Managed by hand; Ritmo pins images only.\n",
            "# Images below; keep them sorted.\n",
            "namespace: web-staging # the namespace\n",
            "# single quoted\n",
            '  newTag: "0.2.0" # pinned by Ritmo\n',
            "  team: platform # owner\n",
        ]:
            assert comment in out

    def test_pins_only_the_named_image(self) -> None:
        """Other entries keep their tags."""
        doc = load(pin_kustomize_image(KUSTOMIZATION, WEB, tag="0.2.0"))
        assert entry(doc, WEB)["newTag"] == "0.2.0"
        assert entry(doc, API)["newTag"] == "v7"
        assert entry(doc, WORKER)["newTag"] == "v2"

    def test_name_match_is_exact(self) -> None:
        """An image whose name only starts with another's is a different image."""
        out = pin_kustomize_image(KUSTOMIZATION, WEB + "-admin", tag="v1")
        doc = load(out)
        assert entry(doc, WEB)["newTag"] == "0.1.0"
        assert entry(doc, WEB + "-admin")["newTag"] == "v1"

    def test_pinning_twice_is_idempotent(self) -> None:
        """Pinning the same tag again changes nothing."""
        once = pin_kustomize_image(KUSTOMIZATION, WEB, tag="0.2.0")
        assert pin_kustomize_image(once, WEB, tag="0.2.0") == once

    @pytest.mark.parametrize("tag", NUMBER_LIKE_TAGS)
    def test_number_like_tag_over_plain_value_is_quoted(self, tag: str) -> None:
        """A tag like 1.10 replacing a plain value is quoted so it stays a string."""
        out = pin_kustomize_image(KUSTOMIZATION, WORKER, tag=tag)
        assert f'  newTag: "{tag}"\n' in out
        value = entry(load(out), WORKER)["newTag"]
        assert isinstance(value, str) and value == tag

    def test_one_point_ten_reads_back_as_one_point_ten(self) -> None:
        """1.10 is not 1.1: read_kustomize_image gives back exactly what was pinned."""
        out = pin_kustomize_image(KUSTOMIZATION, WORKER, tag="1.10")
        assert read_kustomize_image(out, WORKER) == "1.10"

    @pytest.mark.parametrize("tag", YAML11_LOOKALIKE_TAGS)
    def test_yaml11_lookalike_tag_stays_a_string(self, tag: str) -> None:
        """kustomize reads YAML 1.1: a plain yes/on/1_000 there is a bool or int, not a tag."""
        out = pin_kustomize_image(KUSTOMIZATION, WORKER, tag=tag)
        value = entry(load_yaml11(out), WORKER)["newTag"]
        assert isinstance(value, str) and value == tag, out


class TestPinDigest:
    """pin_kustomize_image with a digest replaces the tag pin."""

    def test_digest_replaces_new_tag(self) -> None:
        """The entry gets digest and loses newTag; other entries are untouched."""
        out = pin_kustomize_image(KUSTOMIZATION, WEB, digest=DIGEST)
        doc = load(out)
        assert entry(doc, WEB) == {"name": WEB, "digest": DIGEST}
        assert entry(doc, API) == {"name": API, "newTag": "v7"}
        assert read_kustomize_image(out, WEB) == DIGEST

    def test_digest_keeps_rest_of_file(self) -> None:
        """Only the pinned line differs from the original."""
        out = pin_kustomize_image(KUSTOMIZATION, WEB, digest=DIGEST)
        diff = changed_lines(KUSTOMIZATION, out)
        assert len(diff) == 1
        assert diff[0][1].startswith(f"  digest: {DIGEST}")

    def test_digest_keeps_end_of_line_comment(self) -> None:
        """The comment on the replaced newTag line stays on the pin line."""
        out = pin_kustomize_image(KUSTOMIZATION, WEB, digest=DIGEST)
        assert "# pinned by Ritmo" in out

    def test_replacing_a_digest_keeps_quoting(self) -> None:
        """A quoted digest is replaced by a quoted digest."""
        text = f'images:\n- name: {WEB}\n  digest: "sha256:{"a" * 64}" # d\n'
        out = pin_kustomize_image(text, WEB, digest=DIGEST)
        assert out == f'images:\n- name: {WEB}\n  digest: "{DIGEST}" # d\n'

    def test_tag_replaces_digest(self) -> None:
        """Going back to a tag drops the digest."""
        pinned = pin_kustomize_image(KUSTOMIZATION, WEB, digest=DIGEST)
        doc = load(pin_kustomize_image(pinned, WEB, tag="0.3.0"))
        assert entry(doc, WEB) == {"name": WEB, "newTag": "0.3.0"}

    def test_digest_for_absent_image_adds_entry(self) -> None:
        """An image not yet listed gets a {name, digest} entry."""
        doc = load(pin_kustomize_image(KUSTOMIZATION, "example.com/new", digest=DIGEST))
        assert doc["images"][-1] == {"name": "example.com/new", "digest": DIGEST}
        assert len(doc["images"]) == 4


class TestPinAddsEntry:
    """An absent image or images: list is created, leaving the rest as it was."""

    def test_absent_image_is_appended(self) -> None:
        """The new entry comes last in images and the existing ones are unchanged."""
        out = pin_kustomize_image(KUSTOMIZATION, "example.com/new", tag="v3")
        lines = KUSTOMIZATION.splitlines(keepends=True)
        at = lines.index("commonAnnotations:\n")
        assert out == "".join(
            lines[:at] + ["- name: example.com/new\n", "  newTag: v3\n"] + lines[at:]
        )

    def test_images_key_is_created(self) -> None:
        """A kustomization without images: gets one, after the existing keys."""
        text = "# top\nkind: Kustomization # k\nresources:\n- a.yaml\n"
        out = pin_kustomize_image(text, WEB, tag="1.10")
        assert out == text + f'images:\n- name: {WEB}\n  newTag: "1.10"\n'

    def test_null_images_is_replaced_by_a_list(self) -> None:
        """`images:` with no value counts as an empty list."""
        out = pin_kustomize_image("kind: Kustomization\nimages:\n", WEB, tag="v1")
        assert load(out)["images"] == [{"name": WEB, "newTag": "v1"}]

    def test_empty_text(self) -> None:
        """An empty file becomes a file with just the images list."""
        assert pin_kustomize_image("", WEB, tag="v1") == f"images:\n- name: {WEB}\n  newTag: v1\n"

    def test_new_number_like_tag_is_quoted(self) -> None:
        """A new entry's tag like 1.10 is quoted."""
        out = pin_kustomize_image("kind: Kustomization\n", WEB, tag="1.10")
        assert entry(load(out), WEB)["newTag"] == "1.10"


class TestPinErrors:
    """pin_kustomize_image refuses what it cannot do with OverlayError."""

    @pytest.mark.parametrize(
        "kwargs", [{}, {"tag": "v1", "digest": DIGEST}], ids=["neither", "both"]
    )
    def test_exactly_one_of_tag_or_digest(self, kwargs: dict[str, str]) -> None:
        """Both or neither of tag and digest is refused."""
        with pytest.raises(OverlayError, match="exactly one of tag or digest"):
            pin_kustomize_image(KUSTOMIZATION, WEB, **kwargs)

    @pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n"])
    def test_top_level_must_be_a_mapping(self, text: str) -> None:
        """A list or scalar document is refused."""
        with pytest.raises(OverlayError, match="mapping at the top level"):
            pin_kustomize_image(text, WEB, tag="v1")

    @pytest.mark.parametrize("images", ["foo", "{name: x}"])
    def test_images_must_be_a_list(self, images: str) -> None:
        """images: that is not a list is refused and named."""
        with pytest.raises(OverlayError, match="images must be a list"):
            pin_kustomize_image(f"images: {images}\n", WEB, tag="v1")


class TestReadKustomizeImage:
    """read_kustomize_image reports the pin for one image."""

    def test_reads_tag(self) -> None:
        """The tag of each listed image."""
        assert read_kustomize_image(KUSTOMIZATION, WEB) == "0.1.0"
        assert read_kustomize_image(KUSTOMIZATION, API) == "v7"

    def test_digest_wins_over_tag(self) -> None:
        """An entry with both reports the digest, as kustomize uses it."""
        text = f"images:\n- name: {WEB}\n  newTag: v1\n  digest: {DIGEST}\n"
        assert read_kustomize_image(text, WEB) == DIGEST

    @pytest.mark.parametrize(
        "text", ["", "kind: Kustomization\n", "images:\n", KUSTOMIZATION], ids=repr
    )
    def test_absent_is_none(self, text: str) -> None:
        """No such image, no images, or no file content: None."""
        assert read_kustomize_image(text, "example.com/absent") is None

    def test_entry_without_pin_is_none(self) -> None:
        """An entry with only newName has no tag or digest."""
        text = f"images:\n- name: {WEB}\n  newName: example.com/other\n"
        assert read_kustomize_image(text, WEB) is None

    @pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "images: foo\n"])
    def test_not_a_kustomization_is_none(self, text: str) -> None:
        """A list or scalar document, or images that is not a list, pins nothing."""
        assert read_kustomize_image(text, WEB) is None

    def test_scaffold_overlay(self) -> None:
        """The scaffold overlays pin 0.1.0."""
        assert read_kustomize_image(STAGING, WEB) == "0.1.0"


class TestScaffoldOverlayRoundTrip:
    """Pinning the scaffold's own overlay keeps the file as the user wrote it."""

    def test_same_length_tag_changes_only_the_tag(self) -> None:
        """The scaffold overlay differs only in the tag (indented lists stay indented)."""
        out = pin_kustomize_image(STAGING, WEB, tag="0.2.0")
        assert out == STAGING.replace('"0.1.0"', '"0.2.0"')

    def test_other_lines_unchanged(self) -> None:
        """Whatever the tag length, only the pin line changes, and its comment stays."""
        out = pin_kustomize_image(STAGING, WEB, tag="1.10")
        diff = changed_lines(STAGING, out)
        assert len(diff) == 1
        assert diff[0][1].startswith('    newTag: "1.10"')
        assert diff[0][1].endswith("# pinned by Ritmo")


class TestSetKeyPath:
    """set_key_path edits a Helm values file by dotted key path."""

    def test_image_tag_changes_only_the_value(self) -> None:
        """image.tag is replaced; comments, order and quoting are kept byte for byte."""
        out = set_key_path(VALUES, "image.tag", "0.2.0")
        assert out == VALUES.replace('"0.1.0"', '"0.2.0"')
        assert read_key_path(out, "image.tag") == "0.2.0"

    def test_keeps_single_quotes(self) -> None:
        """A single-quoted value stays single-quoted."""
        out = set_key_path("image:\n  tag: 'v1' # t\n", "image.tag", "v2")
        assert out == "image:\n  tag: 'v2' # t\n"

    def test_keeps_plain_style(self) -> None:
        """A plain value stays plain when the new one is a string too."""
        out = set_key_path("image:\n  tag: v1\n", "image.tag", "v2")
        assert out == "image:\n  tag: v2\n"

    @pytest.mark.parametrize("tag", NUMBER_LIKE_TAGS)
    def test_number_like_value_is_quoted(self, tag: str) -> None:
        """A value like 1.10 over a plain value is quoted and reads back as written."""
        out = set_key_path("image:\n  tag: v1\n", "image.tag", tag)
        assert out == f'image:\n  tag: "{tag}"\n'
        assert read_key_path(out, "image.tag") == tag

    def test_replacing_a_number_quotes_the_new_value(self) -> None:
        """A plain float such as 1.5 is replaced by a quoted string."""
        out = set_key_path("image:\n  tag: 1.5\n", "image.tag", "1.10")
        assert load(out)["image"]["tag"] == "1.10"

    @pytest.mark.parametrize("tag", YAML11_LOOKALIKE_TAGS)
    def test_yaml11_lookalike_value_stays_a_string(self, tag: str) -> None:
        """Helm reads values as YAML 1.1: a plain yes/on/1_000 would be a bool or int there."""
        out = set_key_path("image:\n  tag: v1\n", "image.tag", tag)
        assert load_yaml11(out)["image"]["tag"] == tag, out

    def test_new_key_in_existing_mapping(self) -> None:
        """A key absent from an existing mapping is added at its end."""
        out = set_key_path(VALUES, "image.digest", DIGEST)
        lines = VALUES.splitlines(keepends=True)
        at = lines.index("service:\n")
        assert out == "".join(lines[:at] + [f"  digest: {DIGEST}\n"] + lines[at:])

    def test_nested_mappings_are_created(self) -> None:
        """Missing intermediate mappings are created, after the existing keys."""
        out = set_key_path(VALUES, "ingress.hosts.primary", "web.example.com")
        assert out == VALUES + "ingress:\n  hosts:\n    primary: web.example.com\n"
        assert read_key_path(out, "ingress.hosts.primary") == "web.example.com"

    def test_null_intermediate_becomes_a_mapping(self) -> None:
        """`image:` with no value gets the nested key."""
        out = set_key_path("image:\nreplicas: 1\n", "image.tag", "v1")
        assert load(out) == {"image": {"tag": "v1"}, "replicas": 1}

    def test_empty_text(self) -> None:
        """An empty values file gets the whole path."""
        assert set_key_path("", "image.tag", "1.10") == 'image:\n  tag: "1.10"\n'

    def test_comment_only_file(self) -> None:
        """A values file holding only comments is edited like an empty one, comments kept."""
        out = set_key_path("# staging overrides\n", "image.tag", "v1")
        assert out.startswith("# staging overrides\n")
        assert load(out) == {"image": {"tag": "v1"}}

    def test_single_key(self) -> None:
        """A path with one key sets a top-level key."""
        out = set_key_path(VALUES, "replicaCount", "3")
        assert out == VALUES.replace("replicaCount: 2 ", 'replicaCount: "3" ')

    @pytest.mark.parametrize(
        ("text", "path", "where"),
        [
            ("image: registry.example.com/acme/web:1\n", "image.tag", "image"),
            ("image:\n- a\n", "image.tag", "image"),
            ("image:\n  tag: v1\n", "image.tag.value", "image.tag"),
            ("a:\n  b: 3\n", "a.b.c.d", "a.b"),
        ],
    )
    def test_intermediate_not_a_mapping(self, text: str, path: str, where: str) -> None:
        """An intermediate scalar or list is refused, naming where the path breaks."""
        with pytest.raises(OverlayError) as info:
            set_key_path(text, path, "v2")
        assert str(info.value) == f"{where} is not a mapping, so {path} cannot be set"

    @pytest.mark.parametrize("path", ["", "image.", ".tag", "image..tag"])
    def test_empty_part_is_refused(self, path: str) -> None:
        """A key path with an empty part is refused."""
        with pytest.raises(OverlayError, match="has an empty part"):
            set_key_path(VALUES, path, "v1")

    @pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n"])
    def test_top_level_not_a_mapping(self, text: str) -> None:
        """A values file that is a list or scalar is refused with OverlayError."""
        with pytest.raises(OverlayError):
            set_key_path(text, "image.tag", "v1")


class TestReadKeyPath:
    """read_key_path reads a dotted key path, or None."""

    def test_present(self) -> None:
        """Strings and numbers come back as strings."""
        assert read_key_path(VALUES, "image.tag") == "0.1.0"
        assert read_key_path(VALUES, "image.pullPolicy") == "IfNotPresent"
        assert read_key_path(VALUES, "replicaCount") == "2"

    @pytest.mark.parametrize(
        "path", ["image.digest", "nothing", "image.tag.deeper", "replicaCount.x"]
    )
    def test_absent(self, path: str) -> None:
        """Missing keys and paths through scalars give None."""
        assert read_key_path(VALUES, path) is None

    def test_null_value(self) -> None:
        """An explicit null gives None."""
        assert read_key_path("image:\n  tag: ~\n", "image.tag") is None

    def test_empty_text(self) -> None:
        """An empty file has nothing."""
        assert read_key_path("", "image.tag") is None

    @pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n"])
    def test_not_a_mapping_is_none(self, text: str) -> None:
        """A list or scalar document has no key paths."""
        assert read_key_path(text, "image.tag") is None


def render(kubectl: str, overlay: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in YAML(typ="safe").load_all(proc.stdout) if d]


def deployment_image(docs: list[dict[str, Any]]) -> str:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return str(container["image"])


class TestKustomizeRender:
    """kubectl kustomize renders what pin_kustomize_image pinned in the scaffold overlay."""

    def pin_and_render(self, kubectl: str, tmp_path: Path, **pin: str) -> list[dict[str, Any]]:
        write_scaffold(tmp_path)
        overlay = tmp_path / STAGING_REL
        overlay.write_text(pin_kustomize_image(overlay.read_text(), WEB, **pin))
        return render(kubectl, overlay.parent)

    def test_scaffold_renders_its_own_pin(self, kubectl: str, tmp_path: Path) -> None:
        """Before any edit, staging renders the scaffold's 0.1.0."""
        write_scaffold(tmp_path)
        docs = render(kubectl, (tmp_path / STAGING_REL).parent)
        assert deployment_image(docs) == f"{WEB}:0.1.0"

    @pytest.mark.parametrize("tag", ["0.2.0", "1.10", "2", "v3.0.0-rc.1"])
    def test_tag(self, kubectl: str, tmp_path: Path, tag: str) -> None:
        """The Deployment's image carries the pinned tag, 1.10 included (not 1.1)."""
        docs = self.pin_and_render(kubectl, tmp_path, tag=tag)
        assert deployment_image(docs) == f"{WEB}:{tag}"
        assert {d["metadata"]["namespace"] for d in docs} == {"web-staging"}

    def test_digest(self, kubectl: str, tmp_path: Path) -> None:
        """The Deployment's image is pinned by digest."""
        docs = self.pin_and_render(kubectl, tmp_path, digest=DIGEST)
        assert deployment_image(docs) == f"{WEB}@{DIGEST}"

    @pytest.mark.parametrize("tag", ["yes", "1_000"])
    def test_yaml11_lookalike_tag(self, kubectl: str, tmp_path: Path, tag: str) -> None:
        """A tag such as `yes` or `1_000` renders as that tag rather than breaking the build."""
        overlay = tmp_path / STAGING_REL
        write_scaffold(tmp_path)
        plain = overlay.read_text().replace('"0.1.0"', "v1")  # the user chose plain style
        overlay.write_text(pin_kustomize_image(plain, WEB, tag=tag))
        assert deployment_image(render(kubectl, overlay.parent)) == f"{WEB}:{tag}"


def _round_trip_read(text: str, image: str) -> str | None:
    """read_kustomize_image as the round-trip loader alone answers it."""
    doc = overlays._load(text)
    if not isinstance(doc, dict):
        return None
    for entry in doc.get("images") or []:
        if isinstance(entry, dict) and entry.get("name") == image:
            value = entry.get("digest") or entry.get("newTag")
            return None if value is None else str(value)
    return None


@pytest.mark.parametrize(
    "pinned",
    ['newTag: "1.2.3"', "newTag: 1.2.3", "newTag: 1.10", "newTag: 010", "newTag: yes",
     "newTag: 2024-01-01", "newTag: ~", "newTag: ''", "digest: sha256:abc\n    newTag: x",
     'digest: ""\n    newTag: "2"', "newTag: !custom 1", "newTag: [1]", "newTag: &a 3"],
)  # fmt: skip
def test_the_quick_read_answers_as_the_round_trip(pinned: str) -> None:
    """The environments table reads thousands of overlays through the safe loader; where
    the types could read differently the round trip answers."""
    text = f"images:\n  - name: reg/web\n    {pinned}\n  - name: other\n    newTag: '9'\n"
    try:
        expected: str | None = _round_trip_read(text, "reg/web")
    except Exception:
        expected = "error"
    try:
        got: str | None = overlays.read_kustomize_image(text, "reg/web")
    except Exception:
        got = "error"
    assert got == expected
    for broken in (
        "images: {",
        "- a\n- b",
        "",
        "images: 3",
        "images:\n  - name: reg/web\n\tnewTag: 1",
    ):
        try:
            expected = _round_trip_read(broken, "reg/web")
        except Exception:
            expected = "error"
        try:
            got = overlays.read_kustomize_image(broken, "reg/web")
        except Exception:
            got = "error"
        assert got == expected, broken


@pytest.mark.parametrize(
    "text",
    [
        "images:\n  - name: a\n    newTag: '1'\n",
        "images:\n- name: a\n  newTag: '1'\n",
        "a:\n    b:\n        c: 1\nlist:\n    -   x\n",
        "# only\n",
    ],
)
def test_the_indentation_is_guessed_without_parsing_again(text: str) -> None:
    """A pin guesses the indentation with ruamel's own guess, handed a loader that loads
    nothing: the same guess as ruamel's, without its second parse."""
    from ruamel.yaml.util import load_yaml_guess_indent

    from bot.manifests.overlays import _LOADS_NOTHING

    assert load_yaml_guess_indent(text, yaml=_LOADS_NOTHING)[1:] == load_yaml_guess_indent(text)[1:]
