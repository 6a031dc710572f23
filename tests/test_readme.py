"""What the README counts and lists is what the files it describes define.

Each check reads the README's sentence and the file (or the code) it describes, so a
template or a kind added on one side and not the other fails here, whatever the number."""

from __future__ import annotations

import re
from pathlib import Path

from ruamel.yaml import YAML

from bot.audit.history import KINDS
from bot.auth import Scope

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
NUMBERS = {w: n for n, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split()
)}  # fmt: skip


def _paragraph(starts: str) -> str:
    """The README's paragraph (or list item) that begins with `starts`."""
    at = README.index(starts)
    end = min(i for i in (README.find("\n\n", at), README.find("\n- ", at)) if i != -1)
    return " ".join(README[at:end].split())


def _named(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def _count(text: str, noun: str) -> int:
    """The number the text gives for `noun` ("the five triggers", "3 triggers")."""
    found = re.search(rf"\b(\d+|{'|'.join(NUMBERS)})\s+{noun}\b", text, re.I)
    assert found, f"the README gives no count of {noun} in: {text}"
    word = found.group(1).lower()
    return int(word) if word.isdigit() else NUMBERS[word]


def test_argocd_triggers() -> None:
    data = list(YAML(typ="safe").load_all(
        (ROOT / "templates/argocd/argocd-notifications-cm.yaml").read_text(encoding="utf-8")
    ))  # fmt: skip
    cm = next(d for d in data if d and d.get("kind") == "ConfigMap")["data"]
    triggers = {key.removeprefix("trigger.") for key in cm if key.startswith("trigger.")}
    templates = {key.removeprefix("template.ritmo-") for key in cm if key.startswith("template.")}
    said = _paragraph("- **ArgoCD**")
    assert _count(said, "triggers") == len(triggers), said
    assert {n for n in _named(said) if n.startswith("on-")} == triggers, said
    if "one JSON template per trigger" in said:
        assert templates == triggers


def test_flux_event_sources() -> None:
    data = list(YAML(typ="safe").load_all(
        (ROOT / "templates/flux/ritmo-alert.yaml").read_text(encoding="utf-8")
    ))  # fmt: skip
    alert = next(d for d in data if d and d.get("kind") == "Alert")
    kinds = {source["kind"] for source in alert["spec"]["eventSources"]}
    said = _paragraph("- **Flux**:")
    assert {k for k in re.findall(r"\b([A-Z][a-z]+[A-Z][A-Za-z]+|Kustomization)s\b", said)} == (
        kinds
    ), said


def test_audit_event_kinds() -> None:
    said = _paragraph("The git history is the audit trail.")
    # The kinds, and any snake_case name (a kind the code no longer has), in order.
    listed = [n for n in _named(said) if n in KINDS or re.fullmatch(r"[a-z]+(?:_[a-z]+)+", n)]
    assert listed == list(KINDS)


def test_verify_problem_kinds() -> None:
    code = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "bot/audit").glob("*.py"))
    kinds = set(re.findall(r'Problem\(\s*[\w.]+,\s*"([a-z]+(?:-[a-z]+)+)"', code))
    assert len(kinds) >= 8, kinds
    at = README.index("`ritmo verify [--since")
    listed = README[at : README.index("\n\nEach commit is judged", at)]
    pairs = re.findall(r"^- `([a-z-]+)`|, `([a-z-]+)`:", listed, re.M)  # first, or second
    named = {name for pair in pairs for name in pair if name}
    assert named == kinds


def test_token_scopes() -> None:
    said = _paragraph("- **Scoped tokens.**").split("**Scoped tokens.**")[1].split(". ")[0]
    assert _named(said) == [s.value for s in Scope]
