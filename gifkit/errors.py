"""The errors a user can cause and fix: the command line prints them in one line and exits with status 2.

Every gifkit error of this kind derives from :class:`UserError` (as well as from the built-in exception it
is a case of, so ``except FileNotFoundError`` still catches a missing dataset). The command line
(:mod:`gifkit.cli`) also prints any ``OSError`` or ``ValueError`` in one line; the classes below say more
precisely what went wrong, for callers of the Python API and for the tests.
"""
from __future__ import annotations

__all__ = ["UserError", "DiskFull", "Damaged", "Refused"]


class UserError(Exception):
    """A problem with the user's input, files or environment, stated so that the user can fix it."""


class DiskFull(UserError, OSError):
    """A write failed because the disk (or a quota, or the file-size limit) is full; the message names the
    folder and says that re-running the same command resumes."""


class Damaged(UserError, ValueError):
    """A file gifkit wrote earlier (a checkpoint, a trained model, a record) is damaged; the message names it
    and says how to start over."""


class Refused(UserError, ValueError):
    """gifkit refuses to write (or read) where it could lose or mix a user's data: an output folder that is,
    holds or lies in the input dataset, a symlink leading out of the output folder, a folder holding another
    run."""
