"""Crop the ``pictures`` scenario's screenshots into the small PNGs of docs/images.

Usage: ``python scripts/gui/pictures.py RUN_FOLDER`` (or its ``pictures`` folder) after
``scripts/test-gui --scenario pictures --out RUN_FOLDER``. The scenario records the window's region
rectangles (Blender's window coordinates, y up), so the crops follow the layout instead of fixed
pixel numbers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
COLOURS = 256  # a palette keeps each picture to tens of kilobytes (octree: the drag colours stay true)


def crop(screenshot: Path, rect: list[int], window_height: int, width: int) -> Image.Image:
    """``rect`` (x, y up, w, h) of the screenshot, scaled to ``width`` pixels wide, palette colours."""
    x, y, w, h = rect
    image = Image.open(screenshot).convert("RGB").crop((x, window_height - (y + h), x + w, window_height - y))
    image = image.resize((width, round(h * width / w)), Image.Resampling.LANCZOS)
    return image.quantize(COLOURS, method=Image.Quantize.FASTOCTREE)


def main(run: Path) -> None:
    folder = run if (run / "report.json").exists() else run / "pictures"
    rects = json.loads((folder / "report.json").read_text())["rects"]
    height = rects["window"][3]
    view, sidebar = rects["view"], rects["sidebar"]
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    picture = [view[0], view[1], sidebar[0] + sidebar[2] - view[0], view[3]]  # the viewport and its Sidebar
    outputs = {
        "panel.png": crop(folder / "drags.png", sidebar, height, 260),
        "drags_overlay.png": crop(folder / "drags.png", [view[0], view[1], sidebar[0] - view[0], view[3]], height, 640),
        "imported_result.png": crop(folder / "result.png", picture, height, 800),
    }
    for name, image in outputs.items():
        image.save(DOCS_IMAGES / name, optimize=True)
        print(f"{DOCS_IMAGES / name}: {(DOCS_IMAGES / name).stat().st_size // 1024} KB")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
