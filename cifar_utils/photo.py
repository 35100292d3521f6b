"""A photo from anywhere, as the course's models take images: one reader for notebooks 02 and 08,
the web demo and the folder of your own photos.

Any file PIL reads becomes an upright RGB image: turned as its EXIF tag says, transparency laid on
white, 16-bit and floating-point greys scaled to 8 bits, every other mode made RGB. A file too
large to decode safely is refused from its header, before a pixel is decoded; a missing, empty,
truncated or unreadable file gets a DataError that names it.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .images import DataError

MAX_PIXELS = 100_000_000  # pixels (100 megapixels): a larger photo is refused before it is decoded
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")  # greys of 0..65535
TRANSPARENT = ("RGBA", "LA", "PA", "La", "RGBa")  # PIL has no conversion of "La": a DataError
# what PIL raises while decoding a broken file: OSError (truncated), ValueError, SyntaxError, EOFError
BROKEN = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError)


def load_photo(path: str | os.PathLike) -> Image.Image:
    """Read any photo as an upright RGB image (see the module's docstring); a DataError names a
    file that cannot be read, and why."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"No image at {path}.")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes): not an image.")
    img = _open_checked(path)
    try:
        with img:
            img.load()  # a truncated file raises here: PIL pads none unless ImageFile.LOAD_TRUNCATED_IMAGES is set
            return to_rgb(ImageOps.exif_transpose(img), path)
    except DataError:
        raise
    except BROKEN as err:
        raise DataError(f"{path} is not an image PIL can read ({err}).") from err


def _open_checked(path: Path) -> Image.Image:
    """Open a file lazily (its header only) and refuse it if it has more pixels than MAX_PIXELS
    or than PIL reads without warning (Image.MAX_IMAGE_PIXELS): a small PNG can hold a huge
    image, and decoding it would fill the memory."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", Image.DecompressionBombWarning)
        try:
            img = Image.open(path)
        except Image.DecompressionBombError as err:  # twice PIL's limit: it will not even open it
            pixels = re.search(r"\((\d+) pixels\)", str(err))  # PIL names the size, not the sides
            size = f"{int(pixels[1]) / 1e6:,.0f} megapixels" if pixels else "too large"
            raise DataError(f"{path} is {size}, more than twice the {Image.MAX_IMAGE_PIXELS / 1e6:,.0f} megapixels "
                            "PIL reads without warning: it refuses to open it. Shrink it first.") from err
        except BROKEN as err:
            raise DataError(f"{path} is not an image PIL can read ({err}).") from err
    for warning in caught:  # others than PIL's bomb warning go on as they came
        if not issubclass(warning.category, Image.DecompressionBombWarning):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    width, height = img.size
    bomb = any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught)
    if width * height > MAX_PIXELS or bomb:
        limit = (f"{MAX_PIXELS / 1e6:,.0f} megapixels this course reads" if width * height > MAX_PIXELS else
                 f"{Image.MAX_IMAGE_PIXELS / 1e6:,.0f} megapixels PIL reads without warning")
        img.close()
        raise DataError(f"{path} is {width}×{height} pixels ({width * height / 1e6:,.0f} megapixels), more than the "
                        f"{limit}: shrink it first (the model sees 32×32).")
    return img


def to_rgb(img: Image.Image, name: str | os.PathLike = "the image") -> Image.Image:
    """Any PIL image as 8-bit RGB: transparency on white (a PNG's transparent pixels hold colours
    nobody meant to show), greys of 16 bits or floats scaled to 0..255, CIELAB through colour
    management, the rest converted by PIL; a mode it cannot convert is a DataError naming `name`."""
    try:
        if img.mode in SIXTEEN_BIT + ("I", "F"):
            img = Image.fromarray(_grey_to_uint8(np.asarray(img), img.mode))
        if img.mode == "LAB":  # PIL's own convert("RGB") gets its colours wrong (mid grey turns blue)
            img = ImageCms.applyTransform(img, ImageCms.buildTransform(ImageCms.createProfile("LAB"),
                                                                       ImageCms.createProfile("sRGB"), "LAB", "RGB"))
        if img.mode in TRANSPARENT or (img.mode == "P" and "transparency" in img.info):
            img = img.convert("RGBA")
            return Image.alpha_composite(Image.new("RGBA", img.size, "white"), img).convert("RGB")
        return img.convert("RGB")
    except (ValueError, ImportError, ImageCms.PyCMSError) as err:  # a mode PIL has no conversion for ("La")
        raise DataError(f"{name} is an image of mode {img.mode}, which PIL cannot make RGB ({err}).") from err


def _grey_to_uint8(grey: np.ndarray, mode: str) -> np.ndarray:
    """A grey image of 16 bits (0..65535), 32-bit integers or floats as uint8 (H, W)."""
    grey = np.nan_to_num(grey.astype(np.float64))
    if mode in SIXTEEN_BIT or (mode == "I" and grey.max() > 255):
        grey = grey / 257  # 65535 -> 255; "I" is what older PIL gives a 16-bit PNG
    elif mode == "F" and grey.max() <= 1:
        grey = grey * 255  # floats in 0..1, as a scientific TIFF often holds them
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def to_cifar_size(photo: Image.Image, side: int = 32) -> np.ndarray:
    """A photo as the course's models take images: the centre square, shrunk to side x side
    (uint8 RGB, (side, side, 3)). What the training images were is what a photo must become."""
    square = min(photo.size)
    left, top = (photo.width - square) // 2, (photo.height - square) // 2
    photo = photo.crop((left, top, left + square, top + square))
    return np.array(photo.resize((side, side), Image.Resampling.BICUBIC, reducing_gap=3.0))  # a writable copy


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read any photo as a 32x32 uint8 RGB array: upright, on white, its centre square shrunk."""
    return to_cifar_size(load_photo(path))


def read_folder(folder: str | os.PathLike) -> tuple[dict[str, Image.Image], dict[str, str]]:
    """Read every photo in a folder (not its subfolders), passing over what cannot be read.

    Returns ({file name: upright RGB photo}, {file name: why it was skipped, in a sentence that
    names it}), both in name order; hidden files (.DS_Store, .ipynb_checkpoints) are passed over
    unnamed. A folder with no photo that can be read is a DataError that says what it holds.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"No folder at {folder}." if not folder.exists() else f"{folder} is a file, not a folder of photos.")
    photos, skipped = {}, {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            skipped[path.name] = f"{path.name} is a folder (only the files directly in {folder} are read)."
        elif path.suffix.lower() not in PHOTO_SUFFIXES:
            skipped[path.name] = f"{path.name} has none of the photo suffixes ({' '.join(PHOTO_SUFFIXES)})."
        else:
            try:
                photos[path.name] = load_photo(path)
            except DataError as err:
                skipped[path.name] = str(err).replace(str(path), path.name)
    if not photos:
        found = "; ".join(skipped.values()) if skipped else "it is empty"
        raise DataError(f"{folder} holds no photo this course can read ({' '.join(PHOTO_SUFFIXES)} files): {found}")
    return photos, skipped
