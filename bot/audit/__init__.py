"""The audit trail: events read back from commit trailers, and `ritmo verify`'s rules."""
