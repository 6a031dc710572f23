"""Promotion policy: the model, loading with line/column errors, and evaluation (pure)."""
