"""Promotions: pin an artifact in an environment's overlay, directly or by request."""
