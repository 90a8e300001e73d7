"""Render the seven emoji pictures that the app draws over faces.

Why this script exists: the PNGs in ``emojis/`` are committed, but they must be reproducible and
their licence traceable. They come from Google's Noto Color Emoji font (SIL Open Font License 1.1),
as packaged by Debian (``fonts-noto-color-emoji``), so anyone can regenerate them byte-for-byte
from the same font instead of trusting pictures of unknown origin.

The class → emoji table is read from ``app/emotions.py``, so renaming a class or changing its emoji
there is the only edit needed before running this again.

Usage, from the repository root::

    apt-get install -y fonts-noto-color-emoji
    python -m emojis.make_emojis            # or: python emojis/make_emojis.py
    python -m emojis.make_emojis --font /path/NotoColorEmoji.ttf --out /tmp/emojis
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository root importable for ``app``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image, ImageDraw, ImageFont

from app.emotions import CLASS_NAMES, EMOJI

DEFAULT_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
DEFAULT_OUT = Path(__file__).resolve().parent
#: Noto Color Emoji is a CBDT bitmap font whose strikes are 109 px: FreeType refuses other sizes.
FONT_SIZE = 109
#: Side of the saved square pictures, in pixels.
OUTPUT_SIZE = 256
#: Canvas for one glyph: large enough that nothing is clipped whatever the glyph's offsets.
CANVAS = 2 * FONT_SIZE + 64


def render_emoji(font: ImageFont.FreeTypeFont, emoji: str, size: int = OUTPUT_SIZE) -> Image.Image:
    """Draw ``emoji`` in colour, crop to its opaque pixels, centre it on a transparent square, resize."""
    canvas = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((32, 32), emoji, font=font, embedded_color=True)
    bbox = canvas.getchannel("A").getbbox()
    if bbox is None:
        raise ValueError(f"the font drew nothing for {emoji!r} (U+{ord(emoji[0]):04X})")
    glyph = canvas.crop(bbox)
    side = max(glyph.size)
    square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    square.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    return square.resize((size, size), Image.Resampling.LANCZOS)


def make_emojis(font_path: Path, out_dir: Path) -> list[Path]:
    """Write ``<class>.png`` for every class into ``out_dir``; return the paths written."""
    font = ImageFont.truetype(str(font_path), FONT_SIZE)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in CLASS_NAMES:
        path = out_dir / f"{name}.png"
        render_emoji(font, EMOJI[name]).save(path, format="PNG", optimize=True)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description="Render the emoji PNGs from Noto Color Emoji.")
    parser.add_argument(
        "--font", type=Path, default=DEFAULT_FONT, help="path of NotoColorEmoji.ttf (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)

    if not args.font.is_file():
        print(
            f"error: emoji font not found: {args.font}\n"
            "Install it with:  sudo apt-get update && sudo apt-get install -y fonts-noto-color-emoji\n"
            "or pass the path of NotoColorEmoji.ttf with --font.",
            file=sys.stderr,
        )
        return 1

    for path in make_emojis(args.font, args.out):
        print(f"{path}  ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
