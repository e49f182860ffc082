"""A strength sweep's outputs side by side, each labelled, as one image."""
from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

GAP, LABEL_HEIGHT = 8, 22
BACKGROUND, INK = (24, 24, 28), (235, 235, 235)


def contact_sheet(images: list[Image.Image], labels: list[str]) -> Image.Image:
    """The images in a row at their own size (a sweep's are all one size), a label under each."""
    width = sum(im.width for im in images) + GAP * (len(images) + 1)
    height = max(im.height for im in images) + LABEL_HEIGHT + 2 * GAP
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    x = GAP
    for image, label in zip(images, labels):
        sheet.paste(image.convert("RGB"), (x, GAP))
        draw.text((x, GAP + image.height + 5), _fit(draw, label, font, image.width), fill=INK, font=font)
        x += image.width + GAP
    return sheet


def _fit(draw, text: str, font, width: int) -> str:
    """Shorten the label with an ellipsis until it fits under its image."""
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 1 else ""
    return text
