"""bpy-free logic of the add-on (camera-frame maths, HTTP client, job state), tested with plain pytest."""
