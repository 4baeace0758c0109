"""Errors a user can fix: bad input, unknown targets, wrong params, missing data.

Every command prints such an error as one line naming what was wrong and what is valid, and
exits with status 2 (`cli.main`); `--debug` or `TENSORCOST_DEBUG=1` shows the traceback too.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; the message is the whole story, in one line."""

    exit_code = 2


class MissingDataError(UserError, FileNotFoundError):
    """An input file or directory a command needs is not there (and what makes it)."""
