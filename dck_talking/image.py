"""Photo input: tell photos from videos by their content and load them as upright RGB arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dck_talking.errors import InputError
from dck_talking.video import _require_file

# Still-photo formats Pillow may open; anything else (and animated images) is left to the video reader.
_PHOTO_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
# What Pillow raises for broken or hostile files.
_PILLOW_ERRORS = (OSError, SyntaxError, Image.DecompressionBombError)


def is_image(path: str | Path) -> bool:
    """True if the file's content is a still photo, False for anything else (such as a video).

    The decision reads the file header, not the extension. Animated GIF/WebP/PNG count as video.
    """
    _require_file(path)
    try:
        with Image.open(path, formats=_PHOTO_FORMATS) as image:
            # An MPO is a camera JPEG carrying extra preview pictures, still a photo.
            return image.format == "MPO" or not getattr(image, "is_animated", False)
    except Image.DecompressionBombError:  # a picture, too large: `read_image` says so (the video reader
        return True  # would decode it at full size, every frame, until memory ran out)
    except _PILLOW_ERRORS:
        return False


def read_image(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """Load a photo as an upright RGB uint8 array (H, W, 3).

    EXIF orientation is applied, transparency is composited on white, and grayscale (8 or 16 bit),
    palette and CMYK images are converted to RGB. With `max_side`, a photo larger than that on its
    long side is scaled down to it (Lanczos), keeping its aspect ratio.
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be at least 1 pixel, got {max_side}")
    _require_file(path)
    try:
        with Image.open(path, formats=_PHOTO_FORMATS) as image:
            rgb = _to_rgb(ImageOps.exif_transpose(image))
    except UnidentifiedImageError:  # its message repeats the path
        raise InputError(path, "not a readable image (unknown format)") from None
    except _PILLOW_ERRORS as err:
        raise InputError(path, f"not a readable image ({err})") from None
    height, width = rgb.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return rgb
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.array(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode.startswith("I"):  # 16-bit grayscale: keep the top 8 bits (Pillow would clip)
        image = Image.fromarray((np.clip(np.asarray(image), 0, 65535) >> 8).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        image = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
    return np.array(image.convert("RGB"), dtype=np.uint8)
