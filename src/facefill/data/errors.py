"""The dataset errors: :class:`DatasetError` and its :class:`ImageReadError`."""

from __future__ import annotations

from ..errors import FacefillError


class DatasetError(FacefillError):
    """A dataset folder, list file or source layout is missing, empty or malformed.

    The message names the path and says what was expected.
    """


class ImageReadError(DatasetError):
    """One image file cannot be opened or decoded. The message names the file."""
