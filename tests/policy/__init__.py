"""Tests for bot/policy: the model, loading, evaluation and `ritmo policy check`."""
