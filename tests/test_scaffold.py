"""`ritmo init` writes a scaffold that kubectl kustomize renders for every environment."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from bot.cli import main
from bot.scaffold import scaffold_files

IMAGE = "registry.example.com/acme/web:0.1.0"
ENVIRONMENTS = ["dev", "staging", "production"]


def init(path: Path) -> Any:
    return CliRunner().invoke(main, ["init", str(path)])


def render(kubectl: str, overlay: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in YAML(typ="safe").load_all(proc.stdout) if d]


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scaffold written by `ritmo init`, shared by the render tests."""
    target = tmp_path_factory.mktemp("init") / "manifests"
    result = init(target)
    assert result.exit_code == 0, result.output
    return target


class TestInit:
    """`ritmo init PATH` writes the scaffold."""

    def test_writes_every_scaffold_file(self, tmp_path: Path) -> None:
        """Exit 0, and PATH holds exactly the scaffold, byte for byte."""
        target = tmp_path / "manifests"
        result = init(target)
        assert result.exit_code == 0, result.output
        assert files_under(target) == scaffold_files()
        assert f"Wrote {len(scaffold_files())} files to {target}" in result.output
        assert f"kubectl kustomize {target / 'apps/web/overlays/dev'}" in result.output

    def test_scaffold_has_three_overlays(self) -> None:
        """The scaffold's example app has dev, staging and production overlays."""
        overlays = {p.split("/")[3] for p in scaffold_files() if p.startswith("apps/web/overlays/")}
        assert overlays == set(ENVIRONMENTS)

    def test_unrelated_files_are_left_alone(self, tmp_path: Path) -> None:
        """A directory with other files (but no scaffold file) is filled in around them."""
        (tmp_path / "NOTES.txt").write_text("mine\n")
        result = init(tmp_path)
        assert result.exit_code == 0, result.output
        assert (tmp_path / "NOTES.txt").read_text() == "mine\n"
        assert set(files_under(tmp_path)) == set(scaffold_files()) | {"NOTES.txt"}


class TestInitRefuses:
    """`ritmo init` will not overwrite a scaffold file already there."""

    @pytest.mark.parametrize(
        "existing", ["README.md", "apps/web/overlays/staging/kustomization.yaml"]
    )
    def test_existing_scaffold_file(self, tmp_path: Path, existing: str) -> None:
        """Exit code 2, the file is named, and nothing is written or changed."""
        taken = tmp_path / existing
        taken.parent.mkdir(parents=True, exist_ok=True)
        taken.write_text("mine\n")
        result = init(tmp_path)
        assert result.exit_code == 2
        assert str(taken) in result.stderr
        assert "already exists" in result.stderr
        assert files_under(tmp_path) == {existing: b"mine\n"}

    def test_second_init(self, tmp_path: Path) -> None:
        """Running init twice refuses the second time and keeps the first scaffold."""
        assert init(tmp_path).exit_code == 0
        result = init(tmp_path)
        assert result.exit_code == 2
        assert str(tmp_path) in result.stderr
        assert files_under(tmp_path) == scaffold_files()


class TestScaffoldRenders:
    """kubectl kustomize renders each overlay of the scaffold that `ritmo init` wrote."""

    @pytest.mark.parametrize("env", ENVIRONMENTS)
    def test_overlay(self, kubectl: str, scaffold: Path, env: str) -> None:
        """A Deployment and a Service, in namespace web-<env>, running the pinned image."""
        docs = render(kubectl, scaffold / "apps/web/overlays" / env)
        assert sorted(d["kind"] for d in docs) == ["Deployment", "Service"]
        assert {d["metadata"]["namespace"] for d in docs} == {f"web-{env}"}
        (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == IMAGE

    @pytest.mark.parametrize("env", ENVIRONMENTS)
    def test_selectors_match(self, kubectl: str, scaffold: Path, env: str) -> None:
        """The Deployment and Service select the pods by the app label."""
        docs = {d["kind"]: d for d in render(kubectl, scaffold / "apps/web/overlays" / env)}
        label = {"app.kubernetes.io/name": "web"}
        deployment = docs["Deployment"]["spec"]
        assert deployment["selector"]["matchLabels"] == label
        assert deployment["template"]["metadata"]["labels"] == label
        assert docs["Service"]["spec"]["selector"] == label

    def test_base_keeps_the_placeholder(self, kubectl: str, scaffold: Path) -> None:
        """The base alone renders the placeholder tag, so the overlay pin is what matters."""
        docs = render(kubectl, scaffold / "apps/web/base")
        (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "registry.example.com/acme/web:placeholder"
