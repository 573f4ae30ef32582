"""Add-on preferences: where the backend is and how to reach it."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty

DEFAULT_BACKEND_URL = "http://127.0.0.1:8765"


class PUPPET_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    backend_url: StringProperty(
        name="Backend URL",
        description="Address of the Puppet-Master backend service (puppet-master serve)",
        default=DEFAULT_BACKEND_URL,
    )
    token: StringProperty(
        name="Token",
        description="Bearer token, when the backend was started with --token (needed off this machine)",
        subtype="PASSWORD",
        default="",
    )
    timeout: FloatProperty(
        name="Request Timeout",
        description="Seconds to wait for the backend to answer one request",
        default=10.0,
        min=1.0,
        max=300.0,
        unit="TIME_ABSOLUTE",
    )
    backend_command: StringProperty(
        name="Start Command",
        description="Optional shell command that starts a local backend (e.g. 'puppet-master serve'); "
        "the panel's Start Backend button runs it and keeps its log",
        default="",
    )
    low_vram: BoolProperty(
        name="Low VRAM (CPU offload)",
        description="Start Backend adds --cpu-offload to the Start Command: the model waits in CPU memory and "
        "each part moves to the GPU only while it runs. Use it when the backend runs out of GPU memory; slower",
        default=False,
    )
    results_folder: StringProperty(
        name="Results Folder",
        description="Where results go: empty = next to the saved .blend (//puppet_master/), "
        "or the extension's user folder for an unsaved file",
        subtype="DIR_PATH",
        default="",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        for name in ("backend_url", "token", "timeout", "backend_command", "low_vram", "results_folder"):
            layout.prop(self, name)


def get_preferences(context: bpy.types.Context) -> PUPPET_AP_preferences:
    return context.preferences.addons[__package__].preferences


classes = (PUPPET_AP_preferences,)


register, unregister = bpy.utils.register_classes_factory(classes)
