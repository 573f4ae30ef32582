"""The command Start Backend runs: the preferences' Start Command plus the flags their options ask for (bpy-free)."""

from __future__ import annotations

import shlex

CPU_OFFLOAD_FLAG = "--cpu-offload"


def start_argv(command: str, cpu_offload: bool = False) -> list[str]:
    """``command`` split into arguments as a POSIX shell would (no shell runs it), with ``--cpu-offload``
    appended when ``cpu_offload`` asks for it and the command does not have it yet.

    ValueError, with a sentence that says what to fix, when the command is empty or cannot be split.
    """
    try:
        argv = shlex.split(command or "")
    except ValueError as error:
        raise ValueError(
            f"Cannot read the Start Command {command!r}: {error}; fix it in the add-on preferences"
        ) from None
    if not argv:
        raise ValueError(
            "No Start Command: set one in the add-on preferences, e.g. `puppet-master serve --engine preview`"
        )
    if cpu_offload and CPU_OFFLOAD_FLAG not in argv:
        argv.append(CPU_OFFLOAD_FLAG)
    return argv
