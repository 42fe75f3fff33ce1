"""Errors of the io layer that a user can act on (the CLI prints them as one line)."""

from __future__ import annotations


class UnreadableInputError(ValueError):
    """A recording or event file that holds no readable data: empty, random bytes, wrong format.

    A ValueError, so callers that already catch ValueError for bad inputs keep working.
    """
