"""Where the backend keeps its data: fetched weights (``models/``) and, by default, results.

``PUPPET_MASTER_HOME`` moves all of it; otherwise it is the per-user cache folder:
``$XDG_CACHE_HOME/puppet-master`` (``~/.cache/puppet-master`` when unset) on Linux,
``~/Library/Caches/puppet-master`` on macOS and ``%LOCALAPPDATA%\\puppet-master`` on Windows.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HOME_VARIABLE = "PUPPET_MASTER_HOME"
DEFAULT_MODEL_NAME = "puppet-master"
# Written last by ``puppet-master fetch-weights``: a folder without it is incomplete.
FETCH_RECORD = "fetch-record.json"


def puppet_master_home() -> Path:
    """The backend's data folder (see the module docstring)."""
    if os.environ.get(HOME_VARIABLE):
        return Path(os.environ[HOME_VARIABLE]).expanduser()
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "puppet-master"


def default_model_dir(name: str = DEFAULT_MODEL_NAME) -> Path:
    """Where ``fetch-weights`` assembles the pipeline folder ``name`` by default."""
    return puppet_master_home() / "models" / name


def find_fetched_model(name: str = DEFAULT_MODEL_NAME) -> Path | None:
    """The fetched pipeline folder when a complete one is there (its fetch record written), else None."""
    folder = default_model_dir(name)
    if (folder / FETCH_RECORD).is_file() and (folder / "model_index.json").is_file():
        return folder
    return None
