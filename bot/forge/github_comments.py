"""Ritmo's status comment on issues and pull requests, and who may ask Ritmo for one.

The comment commands (bot/webhooks/comments.py) answer in one comment per issue or pull
request, edited in place, and only for people who may push to the manifests repository.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from github import GithubException
from github.Issue import Issue
from github.Repository import Repository

from bot.auth import is_among
from bot.forge.github_session import GitHubSession

# Marks Ritmo's one status comment per issue or pull request; only counts on the bot's own.
STATUS_MARKER = "<!-- ritmo:status -->"
# GET .../collaborators/{user}/permission maps maintain to write and triage to read.
WRITE_PERMISSIONS = frozenset({"admin", "write"})


class StatusComments:
    """The comments half of the GitHub forge, on the manifests repository."""

    def __init__(self, session: GitHubSession, repository: str, author: Callable[[], str]) -> None:
        self._session = session
        self._repository = repository
        self._author = author  # Ritmo's bot login: whose comments count
        self._known: dict[int, int] = {}  # issue number -> Ritmo's comment id
        self._lock = threading.Lock()

    def _repo(self) -> Repository:
        return self._session.github.get_repo(self._repository)

    def can_write(self, login: str) -> bool:
        """Whether `login` may push to the repository: admin, maintain or write access."""
        with self._session.operation("permission"):
            try:
                permission = self._repo().get_collaborator_permission(login)
            except GithubException as exc:
                if exc.status != 404:
                    raise
                return False  # no such user: no access
            return permission in WRITE_PERMISSIONS

    def upsert(self, number: int, body: str) -> int:
        """Ritmo's one status comment on issue or pull request `number`: edited in place when
        it exists, posted otherwise. Returns the comment's id."""
        text = f"{STATUS_MARKER}\n{body}"
        with self._session.operation("comment"):
            issue = self._repo().get_issue(number)
            with self._lock:
                known = self._known.get(number)
            if known is None:
                known = self._find(issue)
            if known is not None:
                try:
                    issue.get_comment(known).edit(text)
                except GithubException as exc:
                    if exc.status != 404:
                        raise
                    # Deleted by someone since: a fresh one takes its place.
                    known = None
            if known is None:
                known = int(issue.create_comment(text).id)
            with self._lock:
                self._known[number] = known
            return known

    def _find(self, issue: Issue) -> int | None:
        """The oldest comment by Ritmo's bot carrying the marker: anyone can paste the
        marker, and a write-access app could edit their comment, so the author decides."""
        me = self._author()
        for comment in issue.get_comments():
            user = comment.user
            mine = user is not None and is_among(user.login, [me])
            if mine and STATUS_MARKER in (comment.body or ""):
                return int(comment.id)
        return None
