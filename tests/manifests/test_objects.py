"""Tree edits and signed commits built in process, checked against real git."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.manifests.mirror import Mirror
from bot.manifests.objects import (
    Identity,
    commit_payload,
    read_path,
    signed_commit,
    with_signature,
    write_tree,
)
from bot.manifests.signing import CommitSigner, open_gnupg
from bot.scaffold import scaffold_files
from tests.helpers import git, verify_commit

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
AUTHOR = Identity("Ada Author", "ada@example.com")
COMMITTER = Identity("Ritmo", "ritmo@example.com")
WHEN = 1_700_000_000
TREE = "a" * 40
PARENT = "b" * 40


class EagerMirror(Mirror):
    """Flushes each object to disk at once, so plain git commands in these tests see it."""

    def write(self, kind: str, data: bytes) -> str:
        sha = super().write(kind, data)
        self.flush()
        return sha


@pytest.fixture
def mirror(tmp_path: Path, remote: Path) -> Iterator[Mirror]:
    m = EagerMirror(tmp_path / "mirrors", str(remote), "main")
    yield m
    m.close()  # stop GitPython's cat-file helpers


@pytest.fixture
def tip(mirror: Mirror) -> str:
    sha = mirror.fetch()
    assert sha is not None
    return sha


@pytest.fixture
def base(mirror: Mirror, tip: str) -> str:
    return mirror.tree_of(tip)


@pytest.fixture
def signer(signing_key: tuple[Path, str]) -> CommitSigner:
    home, fingerprint = signing_key
    return CommitSigner(open_gnupg(home), fingerprint)


def ls_tree(mirror: Mirror, tree: str) -> dict[str, tuple[str, str]]:
    """path -> (mode, blob sha), recursively, as git reads the tree."""
    out = git(mirror.path, "ls-tree", "-r", "-z", "--full-tree", tree)
    entries = {}
    for record in out.split("\0"):
        if record:
            meta, path = record.split("\t", 1)
            mode, _, sha = meta.split()
            entries[path] = (mode, sha)
    return entries


def top_level_names(mirror: Mirror, tree: str) -> list[str]:
    out = git(mirror.path, "ls-tree", "-z", "--name-only", tree)
    return [n for n in out.split("\0") if n]


def blob_sha(mirror: Mirror, content: bytes) -> str:
    proc = subprocess.run(
        ["git", "hash-object", "--stdin"], cwd=mirror.path, input=content, capture_output=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().strip()


def git_write_tree(
    mirror: Mirror, tmp_path: Path, base: str | None, files: dict[str, bytes]
) -> str:
    """The tree git itself builds for `base` plus `files`, through a scratch index."""
    index = tmp_path / "scratch-index"
    index.unlink(missing_ok=True)
    env = {"GIT_INDEX_FILE": str(index)}
    if base:
        git(mirror.path, "read-tree", base, env=env)
    for path, content in files.items():
        proc = subprocess.run(
            ["git", "hash-object", "-w", "--stdin"],
            cwd=mirror.path,
            input=content,
            capture_output=True,
            check=True,
        )
        sha = proc.stdout.decode().strip()
        git(mirror.path, "update-index", "--add", "--cacheinfo", f"100644,{sha},{path}", env=env)
    return git(mirror.path, "write-tree", env=env).strip()


def fsck_strict(mirror: Mirror) -> None:
    proc = subprocess.run(
        ["git", "fsck", "--strict", "--no-dangling"],
        cwd=mirror.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    problems = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if line.startswith(("error", "warning", "broken", "missing"))
    ]
    assert not problems, problems


class TestWriteTree:
    """write_tree builds the same trees git does."""

    def test_from_nothing(self, mirror: Mirror, tmp_path: Path) -> None:
        """Files at several depths on an empty base land where asked, as git would."""
        files = {"top.txt": b"top\n", "a/b/c/deep.yaml": b"deep: 1\n", "a/side": b"side"}
        tree = write_tree(mirror, None, files)
        assert ls_tree(mirror, tree) == {
            path: ("100644", blob_sha(mirror, content)) for path, content in files.items()
        }
        assert tree == git_write_tree(mirror, tmp_path, None, files)
        fsck_strict(mirror)

    def test_nothing_is_the_empty_tree(self, mirror: Mirror) -> None:
        """No base and no files is git's empty tree."""
        assert write_tree(mirror, None, {}) == EMPTY_TREE

    def test_no_files_keeps_the_base(self, mirror: Mirror, base: str) -> None:
        """Writing nothing onto a base gives the base back."""
        assert write_tree(mirror, base, {}) == base

    def test_same_content_keeps_the_base(self, mirror: Mirror, base: str) -> None:
        """Rewriting files with their current content gives the base back."""
        assert write_tree(mirror, base, scaffold_files()) == base

    def test_adds_at_depth_on_the_scaffold(self, mirror: Mirror, base: str, tmp_path: Path) -> None:
        """New files deep in existing and new directories; every other file is kept."""
        files = {
            "artifacts/web/1.2.3.yaml": b"name: web\nversion: 1.2.3\n",
            "apps/web/overlays/qa/kustomization.yaml": b"resources:\n- ../../base\n",
        }
        tree = write_tree(mirror, base, files)
        before, after = ls_tree(mirror, base), ls_tree(mirror, tree)
        assert set(after) == set(before) | set(files)
        assert {p: after[p] for p in before} == before
        for path, content in files.items():
            assert after[path] == ("100644", blob_sha(mirror, content))
        assert tree == git_write_tree(mirror, tmp_path, base, files)
        fsck_strict(mirror)

    def test_replaces_a_file(self, mirror: Mirror, base: str, tmp_path: Path) -> None:
        """Replacing one file changes only that blob."""
        path = "apps/web/overlays/staging/kustomization.yaml"
        files = {path: b"# replaced\n"}
        tree = write_tree(mirror, base, files)
        before, after = ls_tree(mirror, base), ls_tree(mirror, tree)
        assert {p for p in after if after[p] != before.get(p)} == {path}
        assert read_path(mirror, tree, path) == b"# replaced\n"
        assert tree == git_write_tree(mirror, tmp_path, base, files)

    def test_sorts_like_git(self, mirror: Mirror, base: str, tmp_path: Path) -> None:
        """Directory names sort as if they ended in '/': apps-x, apps.txt, apps/, apps0."""
        files = {name: name.encode() for name in ["apps0", "apps.txt", "apps-x", "Apps", "_a"]}
        files["apps/web/base/deployment.yaml-extra"] = b"x"
        files["apps/web/base-0/x"] = b"y"
        tree = write_tree(mirror, base, files)
        names = top_level_names(mirror, tree)
        assert names.index("apps-x") < names.index("apps.txt") < names.index("apps")
        assert names.index("apps") < names.index("apps0")
        assert tree == git_write_tree(mirror, tmp_path, base, files)
        fsck_strict(mirror)

    def test_non_ascii_names(self, mirror: Mirror, tmp_path: Path) -> None:
        """UTF-8 names are stored as git stores them and sort by their bytes."""
        files = {"é/z.txt": b"1", "e.txt": b"2", "z.txt": b"3", "ß": b"4"}
        tree = write_tree(mirror, None, files)
        assert tree == git_write_tree(mirror, tmp_path, None, files)
        assert read_path(mirror, tree, "é/z.txt") == b"1"
        fsck_strict(mirror)

    def test_successive_writes(self, mirror: Mirror, base: str, tmp_path: Path) -> None:
        """Two edits in a row equal one edit with both files."""
        one = {"artifacts/web/1.0.0.yaml": b"a"}
        two = {"artifacts/web/0.9.0.yaml": b"b", "apps/web/base/service.yaml": b"c"}
        tree = write_tree(mirror, write_tree(mirror, base, one), two)
        assert tree == write_tree(mirror, base, {**one, **two})
        assert tree == git_write_tree(mirror, tmp_path, base, {**one, **two})

    def test_base_must_be_a_tree(self, mirror: Mirror, tip: str) -> None:
        """A commit sha given as base is refused."""
        with pytest.raises(ValueError, match="not a tree"):
            write_tree(mirror, tip, {"x": b"x"})


class TestWriteTreeRefuses:
    """write_tree refuses paths that are not clean and file/directory clashes."""

    @pytest.mark.parametrize(
        "path", ["../x", "a//b", "/abs", "a/", "", ".", "./a", "a/./b", "a/../b", "a/b/.."]
    )
    def test_unclean_path(self, mirror: Mirror, base: str, path: str) -> None:
        """Absolute, empty-part, dot and dot-dot paths raise ValueError."""
        with pytest.raises(ValueError, match="not a clean relative path"):
            write_tree(mirror, base, {path: b"x"})

    def test_file_over_directory(self, mirror: Mirror, base: str) -> None:
        """A file where the base has a directory is refused."""
        with pytest.raises(ValueError, match="apps/web/base is a directory, so it cannot"):
            write_tree(mirror, base, {"apps/web/base": b"x"})

    def test_directory_under_file(self, mirror: Mirror, base: str) -> None:
        """A path that goes through a file of the base is refused."""
        with pytest.raises(ValueError, match="README.md is a file, not a directory"):
            write_tree(mirror, base, {"README.md/x": b"x"})

    @pytest.mark.parametrize(
        "files",
        [{"a": b"1", "a/b": b"2"}, {"a/b": b"2", "a": b"1"}],
        ids=["file-first", "dir-first"],
    )
    def test_clash_within_one_write(self, mirror: Mirror, files: dict[str, bytes]) -> None:
        """The same name as a file and as a directory in one write is refused."""
        with pytest.raises(ValueError, match="a cannot be both a file and a directory"):
            write_tree(mirror, None, files)


class TestReadPath:
    """read_path reads blobs by path, or gives None."""

    def test_present(self, mirror: Mirror, base: str, tip: str) -> None:
        """Every scaffold file reads back as git shows it."""
        for path, content in scaffold_files().items():
            assert read_path(mirror, base, path) == content
        path = "apps/web/base/deployment.yaml"
        assert read_path(mirror, base, path) == git(mirror.path, "show", f"{tip}:{path}").encode()

    @pytest.mark.parametrize(
        "path",
        [
            "absent.txt",
            "apps/absent/base/deployment.yaml",
            "apps/web/base/absent.yaml",
            "apps/web/base/deployment.yaml/under-a-file",
            "",
        ],
    )
    def test_absent(self, mirror: Mirror, base: str, path: str) -> None:
        """Missing files, missing directories and paths through a file give None."""
        assert read_path(mirror, base, path) is None

    @pytest.mark.parametrize("path", ["apps", "apps/web/overlays/dev"])
    def test_directory_is_none(self, mirror: Mirror, base: str, path: str) -> None:
        """A directory is not a file."""
        assert read_path(mirror, base, path) is None

    def test_no_tree(self, mirror: Mirror) -> None:
        """Nothing is under no tree."""
        assert read_path(mirror, None, "README.md") is None

    def test_reads_what_write_tree_wrote(self, mirror: Mirror, base: str) -> None:
        """Binary content round-trips byte for byte."""
        content = bytes(range(256)) * 3
        tree = write_tree(mirror, base, {"bin/data.bin": content})
        assert read_path(mirror, tree, "bin/data.bin") == content
        assert read_path(mirror, base, "bin/data.bin") is None


class TestSignedCommit:
    """signed_commit writes a commit that git verifies with the session key."""

    MESSAGE = "Record web 1.2.3\n\nBuilt by CI.\n\nRitmo-Artifact: web/1.2.3\n"

    def commit(
        self,
        mirror: Mirror,
        signer: CommitSigner,
        base: str | None,
        parents: list[str],
        message: str,
    ) -> str:
        tree = write_tree(mirror, base, {"artifacts/web/1.2.3.yaml": b"version: 1.2.3\n"})
        return signed_commit(
            mirror, signer.sign, tree=tree, parents=parents, author=AUTHOR,
            committer=COMMITTER, when=WHEN, message=message,
        )  # fmt: skip

    def test_verifies(
        self,
        mirror: Mirror,
        signer: CommitSigner,
        base: str,
        tip: str,
        signing_key: tuple[Path, str],
    ) -> None:
        """git verify-commit accepts the signature, made by the session key."""
        sha = self.commit(mirror, signer, base, [tip], self.MESSAGE)
        report = verify_commit(mirror.path, sha, signing_key[0])
        assert f"VALIDSIG {signing_key[1]}" in report

    def test_headers(self, mirror: Mirror, signer: CommitSigner, base: str, tip: str) -> None:
        """cat-file shows tree, parent, author, committer and the gpgsig header in order."""
        sha = self.commit(mirror, signer, base, [tip], self.MESSAGE)
        raw = git(mirror.path, "cat-file", "-p", sha)
        header, _, message = raw.partition("\n\n")
        lines = header.splitlines()
        assert lines[0] == f"tree {mirror.tree_of(sha)}"
        assert lines[1] == f"parent {tip}"
        assert lines[2] == f"author Ada Author <ada@example.com> {WHEN} +0000"
        assert lines[3] == f"committer Ritmo <ritmo@example.com> {WHEN} +0000"
        assert lines[4] == "gpgsig -----BEGIN PGP SIGNATURE-----"
        assert lines[-1] == " -----END PGP SIGNATURE-----"
        assert all(line.startswith(" ") for line in lines[5:])
        assert message == self.MESSAGE

    def test_identities_as_git_reads_them(
        self, mirror: Mirror, signer: CommitSigner, base: str, tip: str
    ) -> None:
        """git log reports the author and committer that were given."""
        sha = self.commit(mirror, signer, base, [tip], self.MESSAGE)
        out = git(mirror.path, "log", "-1", "--format=%an|%ae|%at|%cn|%ce|%ct|%P|%B", sha)
        assert out == (
            f"Ada Author|ada@example.com|{WHEN}|Ritmo|ritmo@example.com|{WHEN}|{tip}|"
            + self.MESSAGE
            + "\n"
        )

    def test_message_gets_a_final_newline(
        self, mirror: Mirror, signer: CommitSigner, base: str, tip: str
    ) -> None:
        """A message without a final newline is stored with one, otherwise unchanged."""
        sha = self.commit(mirror, signer, base, [tip], "Pin web 1.10 in staging")
        raw = git(mirror.path, "cat-file", "commit", sha)
        assert raw.endswith("\n\nPin web 1.10 in staging\n")

    def test_root_commit(
        self, mirror: Mirror, signer: CommitSigner, signing_key: tuple[Path, str]
    ) -> None:
        """A commit without parents is a valid signed root commit."""
        sha = self.commit(mirror, signer, None, [], "Initial\n")
        raw = git(mirror.path, "cat-file", "commit", sha)
        assert "\nparent " not in raw
        verify_commit(mirror.path, sha, signing_key[0])

    def test_history_is_sound(
        self, mirror: Mirror, signer: CommitSigner, base: str, tip: str
    ) -> None:
        """A chain of two signed commits on the fetched tip passes git fsck --strict."""
        first = self.commit(mirror, signer, base, [tip], "First\n")
        tree = write_tree(mirror, mirror.tree_of(first), {"artifacts/web/1.2.4.yaml": b"x\n"})
        second = signed_commit(
            mirror, signer.sign, tree=tree, parents=[first], author=AUTHOR,
            committer=COMMITTER, when=WHEN + 60, message="Second\n",
        )  # fmt: skip
        git(mirror.path, "update-ref", "refs/heads/test", second)
        assert git(mirror.path, "rev-list", f"{tip}..{second}").split() == [second, first]
        assert mirror.is_ancestor(tip, second)
        fsck_strict(mirror)

    def test_signature_binds_the_payload(
        self,
        mirror: Mirror,
        signer: CommitSigner,
        base: str,
        tip: str,
        signing_key: tuple[Path, str],
    ) -> None:
        """A signature moved onto a different payload does not verify."""
        payload = commit_payload(base, [tip], AUTHOR, COMMITTER, WHEN, "Honest\n")
        forged = commit_payload(base, [tip], AUTHOR, COMMITTER, WHEN, "Forged\n")
        sha = mirror.write("commit", with_signature(forged, signer.sign(payload)))
        proc = subprocess.run(
            ["git", "verify-commit", "--raw", sha],
            cwd=mirror.path,
            capture_output=True,
            text=True,
            env={**os.environ, "GNUPGHOME": str(signing_key[0])},
            check=False,
        )
        assert proc.returncode != 0
        assert "BADSIG" in proc.stderr, proc.stderr


class TestIdentity:
    """Identity.stamp formats git's name <email> time zone."""

    @pytest.mark.parametrize(
        ("offset", "zone"), [(0, "+0000"), (330, "+0530"), (-90, "-0130"), (-600, "-1000")]
    )
    def test_stamp(self, offset: int, zone: str) -> None:
        """The zone is [+-]HHMM."""
        assert AUTHOR.stamp(WHEN, offset) == f"Ada Author <ada@example.com> {WHEN} {zone}"


class TestCommitPayload:
    """commit_payload lays out the commit object text that gets signed."""

    def test_layout(self) -> None:
        """tree, parents, author, committer, blank line, message."""
        assert (
            commit_payload(TREE, [PARENT], AUTHOR, COMMITTER, WHEN, "Subject\n\nBody\n")
            == (
                f"tree {TREE}\nparent {PARENT}\n"
                f"author Ada Author <ada@example.com> {WHEN} +0000\n"
                f"committer Ritmo <ritmo@example.com> {WHEN} +0000\n"
                "\nSubject\n\nBody\n"
            ).encode()
        )

    def test_no_parents_and_many_parents(self) -> None:
        """Parents come in the order given; none gives a root commit."""
        root = commit_payload(TREE, [], AUTHOR, COMMITTER, WHEN, "m\n")
        assert b"parent" not in root
        other = "c" * 40
        merge = commit_payload(TREE, [PARENT, other], AUTHOR, COMMITTER, WHEN, "m\n")
        assert f"tree {TREE}\nparent {PARENT}\nparent {other}\nauthor ".encode() in merge

    @pytest.mark.parametrize(
        ("message", "body"), [("m", b"m\n"), ("m\n", b"m\n"), ("a\n\nb", b"a\n\nb\n")]
    )
    def test_message_ends_with_one_newline(self, message: str, body: bytes) -> None:
        """A missing final newline is added; an existing one is not doubled."""
        payload = commit_payload(TREE, [], AUTHOR, COMMITTER, WHEN, message)
        assert payload.endswith(b" +0000\n\n" + body)

    def test_utf8(self) -> None:
        """Names and messages are encoded as UTF-8."""
        payload = commit_payload(TREE, [], Identity("Zoë", "z@example.com"), COMMITTER, WHEN, "ü")
        assert "author Zoë <z@example.com>".encode() in payload
        assert payload.endswith("\n\nü\n".encode())


class TestWithSignature:
    """with_signature inserts the armored signature as a continued gpgsig header."""

    ARMORED = (
        "-----BEGIN PGP SIGNATURE-----\n\niHUEABYKAB0WIQ\n=abcd\n-----END PGP SIGNATURE-----\n"
    )

    def test_layout(self) -> None:
        """gpgsig goes after committer; continuation lines start with one space."""
        payload = commit_payload(TREE, [PARENT], AUTHOR, COMMITTER, WHEN, "Subject\n\nBody\n")
        header, _, _ = payload.partition(b"\n\n")
        assert with_signature(payload, self.ARMORED) == header + (
            b"\ngpgsig -----BEGIN PGP SIGNATURE-----\n"
            b" \n"
            b" iHUEABYKAB0WIQ\n"
            b" =abcd\n"
            b" -----END PGP SIGNATURE-----"
            b"\n\nSubject\n\nBody\n"
        )

    @pytest.mark.parametrize("armored", [ARMORED, ARMORED.rstrip("\n"), "\n" + ARMORED + "\n\n"])
    def test_surrounding_newlines_do_not_matter(self, armored: str) -> None:
        """Leading and trailing newlines of the armor are dropped."""
        payload = commit_payload(TREE, [], AUTHOR, COMMITTER, WHEN, "m\n")
        assert with_signature(payload, armored) == with_signature(payload, self.ARMORED)

    def test_removing_the_header_gives_the_payload_back(self) -> None:
        """Dropping the gpgsig lines recovers exactly what was signed (what git verifies)."""
        payload = commit_payload(TREE, [PARENT], AUTHOR, COMMITTER, WHEN, "a\n\nb\n\nc\n")
        signed = with_signature(payload, self.ARMORED)
        header, sep, body = signed.partition(b"\n\n")
        kept = [ln for ln in header.split(b"\n") if not ln.startswith((b"gpgsig ", b" "))]
        assert b"\n".join(kept) + sep + body == payload


class TestPendingObjects:
    """New objects wait in memory, readable, and reach disk as one pack on flush."""

    def test_flush_writes_one_pack(self, tmp_path: Path, remote: Path) -> None:
        m = Mirror(tmp_path / "lazy", str(remote), "main")
        try:
            tree = write_tree(m, None, {"a/b.txt": b"one\n", "c.txt": b"two\n"})
            packs = sorted((m.path / "objects" / "pack").glob("*.pack"))
            assert packs == []
            assert read_path(m, tree, "a/b.txt") == b"one\n"
            m.flush()
            packs = sorted((m.path / "objects" / "pack").glob("*.pack"))
            assert len(packs) == 1
            assert git(m.path, "cat-file", "-p", f"{tree}:a/b.txt") == "one\n"
            assert ls_tree(m, tree) == {
                "a/b.txt": ("100644", blob_sha(m, b"one\n")),
                "c.txt": ("100644", blob_sha(m, b"two\n")),
            }
            fsck_strict(m)
        finally:
            m.close()


class TestModes:
    """Replacing an executable keeps it executable; a symlink is never overwritten."""

    def test_executable_stays_executable(self, mirror: Mirror, tmp_path: Path) -> None:
        blob = mirror.write("blob", b"#!/bin/sh\n")
        tree = mirror.write("tree", b"100755 run.sh\0" + bytes.fromhex(blob))
        out = write_tree(mirror, tree, {"run.sh": b"#!/bin/sh\necho hi\n"})
        assert ls_tree(mirror, out)["run.sh"][0] == "100755"

    def test_symlink_is_refused(self, mirror: Mirror) -> None:
        blob = mirror.write("blob", b"../elsewhere.yaml")
        tree = mirror.write("tree", b"120000 link.yaml\0" + bytes.fromhex(blob))
        with pytest.raises(ValueError, match="link.yaml is not a regular file"):
            write_tree(mirror, tree, {"link.yaml": b"a: 1\n"})
