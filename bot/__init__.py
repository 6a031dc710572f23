"""Ritmo: a GitOps promotion bot that records CI artifacts as signed commits."""

__version__ = "0.1.0"
