"""Typed exceptions of facefill's public API."""

from __future__ import annotations


class FacefillError(Exception):
    """Base class of every error facefill raises on purpose."""


class InputError(FacefillError, ValueError):
    """An argument has the wrong type, shape, dtype or values.

    The message names the argument, what was expected and what was given.
    """


class ConfigError(InputError):
    """A training config holds a value facefill cannot train with.

    The message names the key (``section.name``), the value given and what is allowed.
    """
