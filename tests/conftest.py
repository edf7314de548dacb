"""Fixtures shared across test modules."""

from tests.tracker_env import env

__all__ = ["env"]
