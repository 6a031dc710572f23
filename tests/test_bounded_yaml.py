"""The one YAML loader (issue 14, finding 2): limits on size, aliases, expansion and depth,
refused at file:line:column before anything expands; failures remembered by blob id."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ruamel.yaml.comments import CommentedMap

from bot import bounded_yaml
from bot.bounded_yaml import LIMITS, YamlLimits, YamlRefused, load
from bot.config import ConfigError, load_settings
from bot.manifests.overlays import OverlayError, pin_kustomize_image
from bot.manifests.records import parse_record
from bot.policy.load import PolicyError, load_policy
from tests.helpers import alias_bomb

SMALL_POLICY = "environments: [{name: dev}]\n"
BOMB = alias_bomb(9, SMALL_POLICY)  # 9**9 strings in under 508 bytes


def test_the_bomb_is_small() -> None:
    assert len(BOMB.encode()) <= 508


@pytest.mark.parametrize("round_trip", [False, True], ids=["safe", "round-trip"])
def test_a_nested_alias_bomb_is_refused_where_it_goes_past_the_limit(round_trip: bool) -> None:
    started = time.perf_counter()
    with pytest.raises(YamlRefused) as refused:
        load(BOMB + f"# {round_trip}\n", "bomb.yaml", round_trip=round_trip)
    assert time.perf_counter() - started < 0.5
    # Level 6 stands for 9**6 strings: its first alias takes the count past the limit.
    assert str(refused.value) == (
        f"bomb.yaml:8:12: too many aliases: the document expands to more than "
        f"{LIMITS.max_nodes} nodes"
    )


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("a: &a [1, *a]\n", "1:11", "recursive alias: it refers to a node that contains it"),
        ("- " + "[" * 101 + "]" * 101 + "\n", "1:102", "nested too deeply (more than 100 levels)"),
        ("a: &a 1\nb: [" + "*a, " * 1000 + "*a]\n", "2:4005", "too many aliases (more than 1000)"),
        ("[" + "1, " * 2000 + "1]\n", "1:5999", "the document expands to more than 2000 nodes"),
        ("a: *nowhere\n", "1:4", "found undefined alias 'nowhere'"),
    ],
    ids=["recursive", "deep", "aliases", "nodes", "undefined"],
)
@pytest.mark.parametrize("round_trip", [False, True], ids=["safe", "round-trip"])
def test_limits(
    text: str, where: str, problem: str, round_trip: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bounded_yaml, "LIMITS", YamlLimits(max_nodes=2000))
    with pytest.raises(YamlRefused) as refused:
        load(text + f"# {round_trip}\n", "f.yaml", round_trip=round_trip)
    assert str(refused.value) == f"f.yaml:{where}: {problem}"


def test_a_document_over_the_size_limit_is_refused_at_the_byte_past_it() -> None:
    text = "a: " + "x" * LIMITS.max_bytes + "\n"
    with pytest.raises(YamlRefused) as refused:
        load(text, "big.yaml")
    assert str(refused.value) == (
        f"big.yaml:1:{LIMITS.max_bytes + 1}: too large (more than {LIMITS.max_bytes} bytes)"
    )


def test_aliases_within_the_limits_load_as_before() -> None:
    text = "base: &base {image: web, tag: '1'}\nweb: *base\nmerged: {<<: *base, tag: '2'}\n"
    assert load(text, "f.yaml") == {
        "base": {"image": "web", "tag": "1"},
        "web": {"image": "web", "tag": "1"},
        "merged": {"image": "web", "tag": "2"},
    }
    kept = load(text, "f.yaml", round_trip=True)
    assert isinstance(kept, CommentedMap) and kept["merged"]["tag"] == "2"
    assert kept["web"]["image"] == "web"
    # YAML 1.1, as kustomize reads: yes is a bool.
    assert load("v: yes\n", "f.yaml", version=(1, 1)) == {"v": True}
    assert load("v: yes\n", "f.yaml") == {"v": "yes"}


def test_content_that_failed_is_refused_again_without_parsing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "a: [1, 2\n# once\n"
    with pytest.raises(YamlRefused) as first:
        load(text, "one.yaml")
    parses: list[object] = []
    monkeypatch.setattr(bounded_yaml, "_load_safe", lambda *a: parses.append(a))
    with pytest.raises(YamlRefused) as again:
        load(text.encode(), "other.yaml")  # the same blob, by any name
    assert parses == []
    assert str(again.value) == str(first.value).replace("one.yaml", "other.yaml")
    # Other content is parsed.
    assert load("a: 1\n# once\n", "f.yaml") is None and len(parses) == 1


def test_the_failure_cache_is_bounded() -> None:
    for i in range(bounded_yaml._FAILED_LIMIT + 50):
        with pytest.raises(YamlRefused):
            load(f"a: [{i}\n", "f.yaml")
    assert len(bounded_yaml._FAILED) == bounded_yaml._FAILED_LIMIT


# -- every YAML Ritmo reads goes through it ---------------------------------------------


def test_policy(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as refused:
        load_policy(BOMB, ".ritmo/policy.yaml")
    assert [str(p) for p in refused.value.problems] == [
        ".ritmo/policy.yaml:8:12: not valid YAML: too many aliases: the document expands "
        f"to more than {LIMITS.max_nodes} nodes"
    ]


def test_records() -> None:
    with pytest.raises(YamlRefused, match="too many aliases"):
        parse_record(BOMB.encode() + b"kind: Artifact\n")


def test_overlays() -> None:
    bomb = alias_bomb(8, "images: [{name: web, newTag: '1'}]\n")
    with pytest.raises(OverlayError, match=r"^not valid YAML: line 8, column 12: too many al"):
        pin_kustomize_image(bomb, "web", tag="2")


def test_settings(tmp_path: Path) -> None:
    config = tmp_path / "ritmo.yaml"
    config.write_text(alias_bomb(8, "data_dir: /tmp/x\n"))
    with pytest.raises(ConfigError, match=r"not valid YAML: too many aliases.* line 8, column 12"):
        load_settings(config)


def test_ritmo_policy_check_answers_the_bomb_in_under_a_second(tmp_path: Path) -> None:
    """In a child process (a bomb that is not refused would take minutes: the timeout
    ends it); the time is the command's own, after Python's imports."""
    bomb = tmp_path / "policy.yaml"
    bomb.write_text(BOMB)
    script = (
        "import sys, time\n"
        "from click.testing import CliRunner\n"
        "from bot.cli import main\n"
        "started = time.perf_counter()\n"
        "result = CliRunner().invoke(main, ['policy', 'check', sys.argv[1]])\n"
        "print(f'{time.perf_counter() - started:.3f}', result.exit_code)\n"
        "print(result.output, end='')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(bomb)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    timing, output = proc.stdout.split("\n", 1)
    seconds, code = timing.split()
    assert code == "1"
    assert output == (
        f"{bomb}:8:12: not valid YAML: too many aliases: the document expands to more than "
        f"{LIMITS.max_nodes} nodes\n"
    )
    assert float(seconds) < 1.0, seconds
