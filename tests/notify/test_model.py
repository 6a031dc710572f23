"""Policy `integrations`: validated at load time, every problem at its file:line:col."""

from __future__ import annotations

import pytest

from bot.policy.integration_fields import placeholder_problems, secret_env_name
from bot.policy.integrations import (
    GitHubWorkflowTarget,
    Integration,
    SlackTarget,
    WebhookTarget,
)
from bot.policy.load import PolicyError, PolicyProblem, load_policy

HEAD = """\
environments:
  - {name: dev}
  - {name: staging}
integrations:
"""


def problems(body: str) -> list[PolicyProblem]:
    with pytest.raises(PolicyError) as caught:
        load_policy(HEAD + body, "policy.yaml")
    return caught.value.problems


def test_the_documented_shape_loads() -> None:
    policy = load_policy(
        HEAD
        + """\
  - on: [promoted, deployed]
    apps: [web]
    environments: [staging]
    slack: {secret: slack-deploys, text: "${ARTIFACT_ID} ${VERSION} is in ${ENVIRONMENT}"}
  - on: [artifact_recorded]
    webhook:
      url: https://cd.example.com/api/v1/deployments
      method: POST
      secret: cd_token
      body: {artifact_id: "${ARTIFACT_ID}", environment: staging, version: "${VERSION}", n: 3}
  - on: [promoted]
    github_workflow: {repository: acme/web, workflow: deploy.yml, ref: main,
                      inputs: {version: "${VERSION}"}}
  - on: [promoted]
    repository_dispatch: {repository: acme/web, event_type: deploy,
                          client_payload: {version: "${VERSION}", nested: {ok: true}}}
  - on: deployed
    name: gate
    spinnaker: {url: "https://gate.example.com/webhooks/webhook/ritmo", secret: gate,
                parameters: {version: "${VERSION}"}}
""",
        "policy.yaml",
    )
    kinds = [i.target[0] for i in policy.integrations]
    assert kinds == ["slack", "webhook", "github_workflow", "repository_dispatch", "spinnaker"]
    assert policy.integrations[4].on == ("deployed",)  # one event as a plain string
    webhook = policy.integrations[1].webhook
    assert webhook is not None and webhook.body == {
        "artifact_id": "${ARTIFACT_ID}",
        "environment": "staging",
        "version": "${VERSION}",
        "n": 3,
    }


def test_no_integrations_is_the_default() -> None:
    assert load_policy(HEAD.replace("integrations:\n", ""), "p.yaml").integrations == ()


def test_an_unknown_variable_is_placed_at_its_value() -> None:
    found = problems(
        """\
  - on: [promoted]
    webhook:
      url: https://cd.example.com/hook
      body:
        artifact_id: "${ARTIFACT_ID}"
        version: "v-${NOPE}"
"""
    )
    assert len(found) == 1
    problem = found[0]
    assert (problem.line, problem.column) == (10, 18)  # the value of `version:`
    assert problem.message.startswith(
        "integrations[0].webhook.body.version: unknown variable ${NOPE}; the variables are APP,"
    )


def test_variables_in_lists_and_urls_are_checked_too() -> None:
    found = problems(
        """\
  - on: [promoted]
    spinnaker:
      url: "https://gate.example.com/${APPLICATION}"
      artifacts:
        - {reference: "${IMAGE}", version: "${version}"}
"""
    )
    assert [(p.line, p.message.split(";")[0]) for p in found] == [
        (7, "integrations[0].spinnaker.url: unknown variable ${APPLICATION}"),
        (9, "integrations[0].spinnaker.artifacts[0].version: unknown variable ${version}"),
    ]
    assert "did you mean ${VERSION}?" in found[1].message


def test_two_target_keys_name_both() -> None:
    found = problems(
        """\
  - on: [promoted]
    slack: {secret: s, text: hi}
    webhook: {url: "https://cd.example.com/hook"}
"""
    )
    assert [str(p) for p in found] == [
        "policy.yaml:7:14: integrations[0].webhook: one target per entry, but slack and "
        "webhook are set; split them into separate entries"
    ]


def test_no_target_at_all() -> None:
    found = problems("  - on: [promoted]\n    apps: [web]\n")
    assert [str(p) for p in found] == [
        "policy.yaml:5:5: integrations[0]: give one target: slack, webhook, github_workflow, "
        "repository_dispatch, spinnaker, update_gitops_repo"
    ]


def test_an_unknown_event_is_named_with_the_known_ones() -> None:
    found = problems("  - on: [promoted, deploy]\n    slack: {secret: s, text: hi}\n")
    assert [str(p) for p in found] == [
        "policy.yaml:5:20: integrations[0].on[1]: unknown event 'deploy'; the events are "
        "artifact_recorded, promoted, deployed, deployment_failed, rolled_back, drift"
    ]


def test_missing_events_and_unknown_keys() -> None:
    found = problems("  - slack: {secret: s, text: hi}\n    when: [promoted]\n")
    messages = [p.message for p in found]
    assert "integrations[0]: missing required key 'on'" in messages
    assert "integrations[0]: unknown key 'when'; remove it or check the spelling" in messages


def test_apps_and_environments_must_be_slugs() -> None:
    found = problems(
        "  - on: [promoted]\n    apps: [Web]\n    environments: [prod/eu]\n"
        "    slack: {secret: s, text: hi}\n"
    )
    assert [(p.line, p.message.split(";")[0]) for p in found] == [
        (6, "integrations[0].apps[0]: 'Web' is not a valid app name"),
        (7, "integrations[0].environments[0]: 'prod/eu' is not a valid environment name"),
    ]


@pytest.mark.parametrize(
    ("target", "field", "message"),
    [
        ("slack: {secret: 'https://hooks.slack.com/x', text: hi}", "slack.secret", "not a secret"),
        ("webhook: {url: 'ftp://cd/x'}", "webhook.url", "not an http(s) URL"),
        ("webhook: {url: 'https://u:p@cd/x'}", "webhook.url", "must not carry credentials"),
        (
            "webhook: {url: 'https://cd/x', headers: {Authorization: Bearer x}}",
            "webhook.headers.Authorization",
            "is set by Ritmo; credentials go in `secret: NAME`",
        ),
        ("webhook: {url: 'https://cd/x', method: GET}", "webhook.method", "'POST', 'PUT'"),
        ("github_workflow: {repository: acme, workflow: d.yml}", "github_workflow.repository", ""),
        ("github_workflow: {repository: a/b, workflow: deploy}", "github_workflow.workflow", ""),
        (
            "repository_dispatch: {repository: a/b, event_type: e, client_payload: {"
            + ", ".join(f"k{i}: v" for i in range(11))
            + "}}",
            "repository_dispatch.client_payload",
            "at most 10 top-level keys",
        ),
        ("slack: {secret: s, text: 'oops ${VERSION'}", "slack.text", "unterminated ${"),
        ("webhook: {url: 'https://cd/x', body: {'${APP}': 1}}", "webhook.body.${APP}", "keys"),
    ],
)
def test_target_problems_name_the_field(target: str, field: str, message: str) -> None:
    found = problems(f"  - on: [promoted]\n    {target}\n")
    assert len(found) == 1, found
    assert found[0].line == 6
    assert found[0].message.startswith(f"integrations[0].{field}: ")
    assert message in found[0].message


def test_literal_dollar_brace_and_placeholders_in_repository() -> None:
    assert placeholder_problems("cost: $${PRICE} for ${APP}") == []
    assert placeholder_problems("${A}")[0].startswith("unknown variable ${A}")
    # A value may be built from variables and still be checked for its shape.
    GitHubWorkflowTarget(repository="acme/${APP}", workflow="deploy-${ENVIRONMENT}.yml")
    WebhookTarget(url="https://cd.example.com/${APP}/${VERSION}")


def test_integration_matching() -> None:
    entry = Integration(
        on=("promoted", "deployed"),
        apps=("web",),
        environments=("staging",),
        slack=SlackTarget(secret="s", text="t"),
    )
    assert entry.matches("promoted", "web", "staging")
    assert not entry.matches("artifact_recorded", "web", "staging")
    assert not entry.matches("promoted", "api", "staging")
    assert not entry.matches("promoted", "web", "production")
    assert not entry.matches("promoted", "web", None)
    everywhere = Integration(on=("artifact_recorded",), slack=SlackTarget(secret="s", text="t"))
    assert everywhere.matches("artifact_recorded", "anything", None)


def test_secret_env_name() -> None:
    assert secret_env_name("slack-deploys") == "RITMO_NOTIFY__SECRETS__SLACK_DEPLOYS"
