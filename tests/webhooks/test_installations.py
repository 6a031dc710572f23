"""installation and installation_repositories: where the app is installed, kept in a table."""

from __future__ import annotations

import copy

from flask.testing import FlaskClient

from bot.runtime import Runtime
from bot.store.installations import InstallationIndex
from tests.webhooks import hooks
from tests.webhooks.hooks import payload, queued

remote_policy, rt, hook = hooks.remote_policy, hooks.rt, hooks.hook


def _status(action: str) -> dict[str, object]:
    event = copy.deepcopy(payload("installation-created"))
    event["action"] = action
    del event["repositories"]  # only `created` lists them
    return event


class TestInstallations:
    """Created, repositories added and removed, suspended, resumed, deleted."""

    def test_lifecycle(self, hook: FlaskClient, rt: Runtime) -> None:
        table = InstallationIndex(rt.index.engine)
        queued(hook, "installation", payload("installation-created"))
        assert rt.webhooks.drain() == 1
        found = table.get(77)
        assert found is not None
        assert (found.account, found.account_type, found.status) == (
            "acme",
            "Organization",
            "active",
        )
        assert found.repositories == ("acme/manifests",)
        assert found.repository_selection == "selected"
        assert [i.id for i in table.covering("acme/manifests")] == [77]

        queued(hook, "installation_repositories", payload("installation_repositories-added"))
        assert rt.webhooks.drain() == 1
        assert table.get(77).repositories == ("acme/manifests", "acme/manifests-eu")  # type: ignore[union-attr]

        removed = copy.deepcopy(payload("installation_repositories-added"))
        removed["action"] = "removed"
        removed["repositories_removed"] = removed.pop("repositories_added")
        removed["repositories_added"] = []
        queued(hook, "installation_repositories", removed)
        assert rt.webhooks.drain() == 1
        assert table.get(77).repositories == ("acme/manifests",)  # type: ignore[union-attr]

        queued(hook, "installation", _status("suspend"))
        assert rt.webhooks.drain() == 1
        assert table.get(77).status == "suspended"  # type: ignore[union-attr]
        assert table.covering("acme/manifests") == []
        queued(hook, "installation", _status("unsuspend"))
        assert rt.webhooks.drain() == 1
        assert table.get(77).status == "active"  # type: ignore[union-attr]
        queued(hook, "installation", _status("deleted"))
        assert rt.webhooks.drain() == 1
        assert table.get(77).status == "deleted"  # type: ignore[union-attr]
        assert [i.id for i in table.all()] == [77]

    def test_repositories_of_an_installation_seen_first_here(
        self, hook: FlaskClient, rt: Runtime
    ) -> None:
        """Installed before Ritmo tracked installations: the row starts from this delivery."""
        event = copy.deepcopy(payload("installation_repositories-added"))
        event["installation"]["id"] = 78
        queued(hook, "installation_repositories", event)
        assert rt.webhooks.drain() == 1
        found = InstallationIndex(rt.index.engine).get(78)
        assert found is not None and found.account == "acme" and found.status == "active"
        assert found.repositories == ("acme/manifests-eu",)

    def test_all_repositories(self, hook: FlaskClient, rt: Runtime) -> None:
        event = copy.deepcopy(payload("installation-created"))
        event["installation"]["repository_selection"] = "all"
        queued(hook, "installation", event)
        assert rt.webhooks.drain() == 1
        table = InstallationIndex(rt.index.engine)
        assert [i.id for i in table.covering("acme/anything")] == [77]
        assert table.covering("other/manifests") == []

    def test_other_actions_are_ignored(self, hook: FlaskClient) -> None:
        resp = hooks.deliver(hook, "installation", _status("new_permissions_accepted"))
        assert resp.status_code == 202 and resp.json["status"] == "ignored"
