"""The errors a user can cause and fix: the command line prints them in one line and exits with status 2.

Every gifkit error of this kind derives from :class:`UserError` (as well as from the built-in exception it
is a case of, so ``except FileNotFoundError`` still catches a missing dataset).
"""
from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A problem with the user's input, files or environment, stated so that the user can fix it."""
