"""``facefill.inpaint``: the names of :mod:`facefill.photo` under their old module.

The photo pipeline (detection, alignment, paste-back, :class:`Inpainter`) lives in the
:mod:`facefill.photo` package; this module re-exports its public names so that
``from facefill.inpaint import Inpainter`` keeps working.
"""

from .photo import *  # noqa: F403  (the re-export is the point of this module)
from .photo import __all__  # noqa: F401
