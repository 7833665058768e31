"""Gradio, imported only when a page is built, and the errors of starting the page."""

from __future__ import annotations

import os

from ..errors import FacefillError


class ServeError(FacefillError):
    """The web page cannot be started (missing dependency, port in use, ...)."""


class GradioNotInstalledError(ServeError, ImportError):
    """Gradio, the optional dependency of the web page, is not installed."""


def import_gradio():
    # The page passes analytics_enabled=False itself; the variable covers Gradio's other
    # entry points in this process. A user's explicit setting is kept.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError:
        raise GradioNotInstalledError(
            "the web page needs gradio, which is not installed; install it with pip install 'facefill[serve]'"
        ) from None
    return gr

