"""Outbound integrations: the policy's `integrations`, rendered per event into a durable
outbox and delivered (Slack, webhooks, GitHub workflow/repository dispatch, Spinnaker)."""
