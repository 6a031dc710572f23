"""GitHub webhooks: verify, de-duplicate, queue durably, route to one module per behaviour."""
