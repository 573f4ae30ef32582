"""The ``preview`` engine: a weight-free, CPU-only draft of the drags' motion made by moving parts of the image.

It gives an artist an instant draft when no GPU or no weights are available, and it is the baseline in
evaluation. It is never presented as the Puppet-Master model: it only moves pixels that are already in
the image (and fills what they uncover from the surface around), it invents no new view of anything.

Each drag moves the *part* under its start — from the request's part map when it has one, else a region
grown from the drag's start along the image's edges (:mod:`.regions`) — as one rigid 2-D motion fitted
to the drag's path: a slide for a straight drag, a turn about a pivot for a curved one (:mod:`.motion`).
The rest of the object stays exactly still; parts are composited in depth order and what a moved part
uncovers is filled from the surrounding surface (:mod:`.animate`). :class:`PreviewEngine`
(:mod:`.engine`) keeps the engine contract: the request's crop, frames back on the input image,
transparency kept.

Limits: no part turns in 3-D (a door swinging open about a vertical hinge slides or turns in the image
plane instead of narrowing), nothing new appears (a drawer's sides, the inside of a cabinet), no shading
changes; without a part map the part is only as good as the edges around it, and when they are weak
the region stays small rather than take the whole object. Every variation is the same video.
"""

from .animate import iter_preview_frames, warp_preview
from .engine import PreviewEngine

__all__ = ["PreviewEngine", "iter_preview_frames", "warp_preview"]
