"""``puppet-master serve``: the HTTP service the Blender add-on talks to."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from pydantic import ValidationError

from .engines.config import add_engine_arguments
from .service.settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ServiceSettings,
    default_results_dir,
    describe_settings_error,
)

logger = logging.getLogger(__name__)

# CLI flag -> ServiceSettings field; a flag left out falls back to PUPPET_MASTER_<FIELD>, then the default.
_FIELDS = (
    "host",
    "port",
    "engine",
    "model",
    "svd",
    "unet",
    "unet_filename",
    "device",
    "dtype",
    "cpu_offload",
    "decode_chunk",
    "token",
    "results_dir",
    "max_queue",
    "keep_hours",
    "keep_gb",
    "max_job_pixels",
    "max_connections",
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the HTTP service for the Blender add-on",
        description="Run the HTTP service. Every flag can also be set as PUPPET_MASTER_<FLAG> "
        "(e.g. PUPPET_MASTER_TOKEN); flags win.",
    )
    parser.add_argument("--host", help=f"bind address (default {DEFAULT_HOST}); any other than loopback needs --token")
    parser.add_argument("--port", type=int, help=f"TCP port (default {DEFAULT_PORT})")
    add_engine_arguments(parser.add_argument_group("engine"), defaults=False)
    parser.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every request but /v1/health")
    parser.add_argument("--results-dir", help=f"where results are kept (default {default_results_dir()})")
    parser.add_argument("--max-queue", type=int, help="jobs that may wait behind the running one (default 8)")
    parser.add_argument("--keep-hours", type=float, help="delete results older than this (default 168; 0 = never)")
    parser.add_argument(
        "--keep-gb", type=float, help="delete the oldest results beyond this size (default 10; 0 = no limit)"
    )
    parser.add_argument(
        "--max-job-pixels",
        type=int,
        help="largest job output, width x height x frames x videos (default 67108864 = 2048x2048x16)",
    )
    parser.add_argument(
        "--max-connections", type=int, help="open connections served at once (default 128; capped by ulimit -n)"
    )
    parser.set_defaults(handler=_handle)


def settings_from_args(args: argparse.Namespace) -> ServiceSettings:
    """ServiceSettings from the flags given, the environment, and the defaults, in that order.

    ValueError, in one sentence naming the flag, for a value the service cannot run with.
    """
    given: dict[str, Any] = {name: getattr(args, name) for name in _FIELDS if getattr(args, name, None) is not None}
    try:
        return ServiceSettings(**given)
    except ValidationError as error:
        raise ValueError(describe_settings_error(error)) from None


def _handle(args: argparse.Namespace) -> int:
    import uvicorn

    from .service import create_app
    from .service.logs import install_repeat_filter
    from .service.main import configured_engine_factory
    from .service.memory import freeze_long_lived, freezing, return_large_buffers_to_the_system
    from .service.server import uvicorn_options

    settings = settings_from_args(args)
    install_repeat_filter()  # a fault that hits every request is logged a few times, then counted
    return_large_buffers_to_the_system()  # bodies and frames of tens of MB, freed for good (service/memory.py)
    # The app refuses an unsafe bind address, then loads the engine on a background thread once it
    # starts, so the port opens at once and GET /v1/health reports the loading; the engine is logged
    # when it is ready. Long-lived objects (the imports now, the engine once loaded) are kept out of
    # the garbage collector's passes, which otherwise stall every request for a quarter of a second.
    app = create_app(settings, engine_factory=freezing(configured_engine_factory(settings)))
    freeze_long_lived()
    print(
        f"puppet-master serve: http://{settings.host}:{settings.port}/v1 (API docs at /docs); "
        f"results in {settings.results_dir}; token {'required' if settings.token_value else 'not required'}"
    )
    print(
        f"puppet-master serve: loading the engine (--engine {settings.engine}) in the background; "
        "jobs queue until it is ready, GET /v1/health shows the progress",
        flush=True,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # use the CLI's logging setup
        access_log=getattr(args, "verbose", False),
        **uvicorn_options(settings),  # deadlines, the connection cap (backend.service.protocol)
    )
    return 0
