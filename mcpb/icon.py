"""Draw the bundle's icon (mcpb/icon.png): a play button and an approved coin, 512x512 as the MCPB docs recommend.

Run ``uv run python mcpb/icon.py`` to redraw it; the PNG is committed so the manifest validates as it is.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 512
ICON = Path(__file__).resolve().parent / "icon.png"


def draw_icon(path: Path = ICON) -> Path:
    """Write the icon as a small palette PNG and return its path."""
    image = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((16, 16, SIZE - 16, SIZE - 16), radius=96, fill=(40, 30, 92, 255))
    draw.polygon([(150, 120), (150, 392), (370, 256)], fill=(255, 255, 255, 255))  # play: images and videos
    draw.ellipse((300, 300, 468, 468), fill=(246, 190, 60, 255), outline=(40, 30, 92, 255), width=12)  # a credit
    draw.line([(338, 386), (372, 420), (430, 350)], fill=(40, 30, 92, 255), width=18, joint="curve")  # approved
    image.quantize(colors=16).save(path, optimize=True)
    return path


if __name__ == "__main__":
    print(draw_icon())
