"""The local HTTP service (``puppet-master serve``): FastAPI routes in front of one engine worker thread."""

from .main import create_app
from .settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
