"""Helpers the operators share: the add-on's user folder, redraws, and messages from timers."""

from __future__ import annotations

import logging
import os

import bpy

logger = logging.getLogger(__name__)

# "bl_ext.user_default.puppet_master" when installed as an extension (the package above operators/).
ADDON_PACKAGE = __package__.rpartition(".")[0]


def user_folder(name: str) -> str:
    """``<extension user folder>/<name>``, created; Blender keeps it across updates of the extension.

    Outside the extension system (the add-on loaded from a plain folder) there is no extension
    folder: Blender's user data folder is used instead.
    """
    try:
        return bpy.utils.extension_path_user(ADDON_PACKAGE, path=name, create=True)
    except ValueError:
        folder = bpy.utils.user_resource("DATAFILES", path=os.path.join("puppet_master", name), create=True)
        return folder


def tag_redraw(context: bpy.types.Context | None = None) -> None:
    """Redraw the 3D views and property editors (panels show job progress and backend status)."""
    window_manager = (context or bpy.context).window_manager
    if window_manager is None:
        return
    for window in window_manager.windows:
        screen = window.screen
        if screen is None:
            continue
        for area in screen.areas:
            if area.type in {"VIEW_3D", "PROPERTIES"}:
                area.tag_redraw()


def notify(level: str, message: str) -> None:
    """Tell the user from a ``bpy.app.timers`` callback, which has no operator to report through.

    Logged always. With a window, :class:`PUPPET_OT_notify` is invoked: it reports from its own modal
    step, which is what puts a message into the status bar and the Info editor (a report of an
    operator *called* from Python only reaches the terminal, and an ERROR one raises instead); Blender
    shows ERROR reports as a popup too.
    """
    logger.log({"ERROR": logging.ERROR, "WARNING": logging.WARNING}.get(level, logging.INFO), "%s", message)
    if bpy.app.background:
        return
    window_manager = bpy.context.window_manager
    windows = list(window_manager.windows) if window_manager else []
    if not windows:
        return
    try:
        with bpy.context.temp_override(window=windows[0]):
            bpy.ops.puppet.notify("INVOKE_DEFAULT", level=level, message=message)
    except (RuntimeError, AttributeError) as error:  # no usable window (closing, or a modal state)
        logger.debug("could not show the message in the UI: %s", error)


class PUPPET_OT_notify(bpy.types.Operator):
    """Show a message in the status bar and the Info editor (used by timers; registered by ``backend.py``)."""

    bl_idname = "puppet.notify"
    bl_label = "Puppet Master Message"
    bl_options = {"INTERNAL"}

    level: bpy.props.EnumProperty(
        name="Level",
        description="Kind of message",
        items=(("INFO", "Info", "Information"), ("WARNING", "Warning", "Warning"), ("ERROR", "Error", "Error")),
        default="INFO",
    )
    message: bpy.props.StringProperty(name="Message", description="Text to show", default="")

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if context.window is None:
            return self.execute(context)
        # Report on the first event of the modal step: reports made there go to the window manager.
        self._timer = context.window_manager.event_timer_add(0.01, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        context.window_manager.event_timer_remove(self._timer)
        self.report({self.level}, self.message)
        return {"FINISHED"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        self.report({self.level}, self.message)
        return {"FINISHED"}
