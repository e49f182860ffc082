"""A strength sweep as one image: the init, then each output, side by side, each fully labelled."""
from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

GAP, LABEL_PAD = 8, 5
BACKGROUND, INK = (24, 24, 28), (235, 235, 235)
# Pillow's own font (FreeType when Pillow has it), so the sheet looks the same on every machine.
# A label that does not fit its tile in words at the first size is tried smaller, down to the last.
FONT_SIZES = (10, 9, 8, 7)


def contact_sheet(images: list[Image.Image], labels: list[str]) -> Image.Image:
    """The images in a row at their own size (a sweep's are all one size), the whole label under
    each, wrapped to the image's width (and shrunk when one word is wider than it)."""
    layouts = [label_layout(label, image.width) for image, label in zip(images, labels)]
    band = max(len(lines) * _line_height(font) for font, lines in layouts) + 2 * LABEL_PAD
    width = sum(im.width for im in images) + GAP * (len(images) + 1)
    height = max(im.height for im in images) + band + GAP
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    x = GAP
    for image, (font, lines) in zip(images, layouts):
        sheet.paste(image.convert("RGB"), (x, GAP))
        y = GAP + image.height + LABEL_PAD
        for line in lines:
            draw.text((x, y), line, fill=INK, font=font)
            y += _line_height(font)
        x += image.width + GAP
    return sheet


def label_layout(text: str, width: int) -> tuple[ImageFont.ImageFont, list[str]]:
    """(font, lines): `text` on one line when it fits `width` pixels, else one line per part (the
    " · " between a label's parts becomes the line break: "strength 0.2" / "3 taken / 13 skipped")
    and, where a part is still too wide, broken between words; at the largest of FONT_SIZES where
    every word fits. At the smallest, a word wider than the tile is broken between characters.
    Nothing is cut: the lines hold every character of `text` but those separators."""
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    words = text.split(" ")
    for size in FONT_SIZES:
        font = label_font(size)
        if all(measure.textlength(word, font=font) <= width for word in words):
            break
    if measure.textlength(text, font=font) <= width:
        return font, [text]
    return font, [line for part in text.split(" · ") for line in _wrapped(part, font, width, measure)]


def _wrapped(text: str, font, width: int, measure) -> list[str]:
    """Greedy word wrap: as many words on each line as fit."""
    lines: list[str] = []
    for word in text.split(" "):
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and measure.textlength(candidate, font=font) <= width:
            lines[-1] = candidate
        else:
            lines += _broken(word, font, width, measure)
    return lines


def label_font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size)
    except (TypeError, ImportError, OSError):  # an old Pillow, or one without FreeType: its bitmap font
        return ImageFont.load_default()


def _broken(word: str, font, width: int, measure) -> list[str]:
    """A word as pieces each no wider than `width` (one piece when it fits)."""
    pieces = [""]
    for char in word:
        if pieces[-1] and measure.textlength(pieces[-1] + char, font=font) > width:
            pieces.append("")
        pieces[-1] += char
    return pieces


def _line_height(font) -> int:
    if hasattr(font, "getmetrics"):
        ascent, descent = font.getmetrics()
        return ascent + descent + 1
    return font.getbbox("Ag")[3] + 2
