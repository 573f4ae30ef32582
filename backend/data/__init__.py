"""Training data for Puppet-Master: render animated assets, sample drags from point tracks, curate.

``render.py`` (``render-animations``, needs ``bpy``) renders one asset from several views and tracks
surface points; ``drags.py`` (``sample-drags``) turns the tracks into drag samples per clip;
``curate.py`` (``curate``) keeps part-level animations and rejects static, rigid or jerky ones.
File formats are documented in each module; axes and pixel conventions in ``geometry.py``.
"""
