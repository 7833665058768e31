"""Typed exceptions of facefill's public API."""

from __future__ import annotations


class FacefillError(Exception):
    """Base class of every error facefill raises on purpose."""


class InputError(FacefillError, ValueError):
    """An argument has the wrong type, shape, dtype or values.

    The message names the argument, what was expected and what was given.
    """
