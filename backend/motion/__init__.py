"""Motion measured on a video's frames: point tracks for Bake Motion (``track``)."""

from .track import Tracks, load_frames, track_points

__all__ = ["Tracks", "load_frames", "track_points"]
