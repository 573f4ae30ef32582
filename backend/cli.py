"""The ``puppet-master`` command line. Each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn

from . import __version__, fetch_weights, generate, selfcheck, serve
from .data import curate, drags, render
from .evaluation import evaluate
from .motion import command as track
from .training import cache, train


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (the usage block it prints first buries the reason)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


# Errors that mean "the input (a flag, a file, a folder) is wrong", told in one line with exit status 2;
# anything else is a bug and keeps its traceback.
_INPUT_ERRORS = (ValueError, OSError, RuntimeError)


def _is_input_error(error: BaseException) -> bool:
    # safetensors raises its own type for a damaged weights file
    return isinstance(error, _INPUT_ERRORS) or type(error).__name__ == "SafetensorError"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="puppet-master", description="Puppet-Master: part-level motion videos from drags.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    selfcheck.add_parser(subparsers)
    fetch_weights.add_parser(subparsers)
    serve.add_parser(subparsers)
    generate.add_parsers(subparsers)
    cache.add_parser(subparsers)
    train.add_parser(subparsers)
    evaluate.add_parser(subparsers)
    render.add_parser(subparsers)
    drags.add_parser(subparsers)
    curate.add_parser(subparsers)
    track.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    if not args.verbose:
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.set_verbosity_error()
        diffusers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if not _is_input_error(error):
            raise
        text = " ".join(str(error).split()) or type(error).__name__  # one line, whatever the library wrote
        print(f"puppet-master {args.command}: {text}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
