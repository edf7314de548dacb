"""Fixtures shared across test modules."""

from tests.tasks.tracker_env import env

__all__ = ["env"]
