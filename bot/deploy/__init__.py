"""Deployments: ArgoCD/Flux intake, deployment records, rollback."""
