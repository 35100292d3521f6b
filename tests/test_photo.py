"""The one photo reader (cifar_utils.photo): every mode PIL opens made 8-bit RGB as an eye sees it,
a file too large refused from its header, broken files named, and a folder read with what it skips."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from cifar_utils import data, photo
from cifar_utils.data import DataError

GRADIENT = np.arange(65536, dtype=np.uint16).reshape(256, 256)  # every 16-bit grey once


def png(width: int, height: int, bit_depth: int, colour_type: int, rows=None, header_only: bool = False) -> bytes:
    """A PNG written by hand, for what PIL cannot write (16-bit RGB) or need not decode (a header).

    rows: a (height, width, channels) array of the bit depth, or None for an image of zeros
    compressed row by row (13000x13000 is 0.2 MB); colour_type 0 grey, 2 RGB, 6 RGBA;
    header_only: its pixel data left empty (what PIL reads before it decodes is all there)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer = zlib.compressobj(9)
    if header_only:
        body = b""
    elif rows is None:
        channels = {0: 1, 2: 3, 6: 4}[colour_type]
        line = bytes(1 + width * channels * bit_depth // 8)  # filter byte 0, then the zeros
        body = b"".join(packer.compress(line) for _ in range(height))
    else:
        big = rows.astype(">u2" if bit_depth == 16 else np.uint8)
        body = b"".join(packer.compress(b"\0" + big[y].tobytes()) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body + packer.flush())
            + chunk(b"IEND", b""))


def pixels(path) -> np.ndarray:
    return np.asarray(photo.load_photo(path)).astype(int)


# --- modes -------------------------------------------------------------------------------------

def test_a_16_bit_grey_png_reads_as_its_8_bit_version_not_washed_to_white(tmp_path):
    Image.fromarray(GRADIENT).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")  # PIL 12: I;16, older: I
    read = pixels(tmp_path / "grey16.png")
    assert read.shape == (256, 256, 3) and (read == read[..., :1]).all()  # grey in all three channels
    assert np.abs(read[..., 0] - np.rint(GRADIENT / 257)).max() <= 1
    assert abs(read.mean() - 127.5) < 0.5  # not 254.9, as PIL's own convert("RGB") gives


@pytest.mark.parametrize("mode", photo.SIXTEEN_BIT)
def test_every_16_bit_grey_mode_maps_0_65535_to_0_255(mode):
    order = ">u2" if mode == "I;16B" else "<u2" if mode in ("I;16", "I;16L") else "=u2"
    image = Image.frombytes(mode, (256, 256), GRADIENT.astype(order).tobytes())
    rgb = np.asarray(photo.to_rgb(image)).astype(int)
    assert np.abs(rgb[..., 1] - np.rint(GRADIENT / 257)).max() <= 1


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_a_16_bit_tiff_reads_as_its_8_bit_version(tmp_path, mode):
    order = ">u2" if mode == "I;16B" else "<u2"
    Image.frombytes(mode, (256, 256), GRADIENT.astype(order).tobytes()).save(tmp_path / "grey16.tif")
    assert np.abs(pixels(tmp_path / "grey16.tif")[..., 2] - np.rint(GRADIENT / 257)).max() <= 1


def test_a_16_bit_rgb_png_equals_its_8_bit_version(tmp_path):
    eight = np.random.default_rng(0).integers(0, 256, (40, 60, 3))
    (tmp_path / "rgb16.png").write_bytes(png(60, 40, 16, 2, eight * 257))  # 8-bit value v is 16-bit 257 v
    Image.fromarray(eight.astype(np.uint8)).save(tmp_path / "rgb8.png")
    assert np.abs(pixels(tmp_path / "rgb16.png") - pixels(tmp_path / "rgb8.png")).max() <= 1


def test_a_16_bit_rgba_png_lies_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint16)  # black, transparent ...
    rgba[2:6, 2:6] = (65535, 0, 0, 65535)  # ... but for an opaque red square
    (tmp_path / "rgba16.png").write_bytes(png(8, 8, 16, 6, rgba))
    read = pixels(tmp_path / "rgba16.png")
    assert tuple(read[0, 0]) == (255, 255, 255) and tuple(read[3, 3]) == (255, 0, 0)


@pytest.mark.parametrize(("values", "expected"), [(np.arange(256), np.arange(256)),  # 8 bits held in 32: as they are
                                                  (np.arange(256) * 257, np.arange(256))])  # 16 bits held in 32: /257
def test_32_bit_integer_grey_is_scaled_only_when_it_exceeds_255(tmp_path, values, expected):
    Image.fromarray(values.reshape(16, 16).astype(np.int32)).save(tmp_path / "grey32.tif")
    assert Image.open(tmp_path / "grey32.tif").mode == "I"
    assert np.abs(pixels(tmp_path / "grey32.tif")[..., 0].ravel() - expected).max() <= 1


@pytest.mark.parametrize(("values", "expected"), [(np.linspace(0, 1, 256), np.arange(256)),  # fractions: x255
                                                  (np.linspace(-50, 300, 256), np.linspace(-50, 300, 256).clip(0, 255))])
def test_float_grey_in_0_1_is_scaled_and_beyond_it_clipped(tmp_path, values, expected):
    Image.fromarray(values.reshape(16, 16).astype(np.float32)).save(tmp_path / "float.tif")
    assert Image.open(tmp_path / "float.tif").mode == "F"
    assert np.abs(pixels(tmp_path / "float.tif")[..., 0].ravel() - expected).max() <= 1


def test_half_transparent_rgba_la_and_palette_transparency_lie_on_white(tmp_path):
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 128  # red at half opacity over white: pink
    rgba[0, 0] = (0, 0, 0, 0)  # black, fully transparent: white
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    read = pixels(tmp_path / "rgba.png")
    assert tuple(read[0, 0]) == (255, 255, 255) and np.abs(read[5, 5] - (255, 127, 127)).max() <= 1
    la = np.zeros((10, 10, 2), np.uint8)
    la[5:, :, 1] = 255  # black: transparent above, opaque below
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    read = pixels(tmp_path / "la.png")
    assert (read[:5] == 255).all() and (read[5:] == 0).all()
    palette = Image.new("P", (10, 10), 1)
    palette.putpalette([0, 0, 0, 0, 0, 255])  # index 0 black, 1 blue
    palette.paste(0, (0, 0, 5, 10))  # the left half black, and index 0 transparent:
    palette.save(tmp_path / "palette.gif", transparency=0)
    read = pixels(tmp_path / "palette.gif")
    assert (read[:, :5] == 255).all() and (read[:, 5:] == (0, 0, 255)).all()


@pytest.mark.parametrize("mode", ["CMYK", "1", "L", "P"])
def test_cmyk_bilevel_grey_and_palette_become_rgb_as_pil_converts_them(tmp_path, mode):
    rgb = Image.fromarray(np.random.default_rng(1).integers(0, 256, (12, 12, 3), dtype=np.uint8))
    image = rgb.convert(mode)
    image.save(tmp_path / "photo.tif")
    assert np.array_equal(pixels(tmp_path / "photo.tif"), np.asarray(image.convert("RGB")))


def test_a_cielab_tiff_is_converted_by_colour_management(tmp_path):
    Image.new("LAB", (4, 4), (128, 128, 128)).save(tmp_path / "lab.tif")  # L* 50, a* 0, b* 0: mid grey
    read = pixels(tmp_path / "lab.tif")
    assert (np.abs(read - 119) <= 2).all()  # PIL's own convert("RGB") gives (0, 84, 251) for it


def test_a_mode_pil_cannot_make_rgb_is_a_data_error_naming_the_file():
    with pytest.raises(DataError, match="odd.tif is an image of mode La"):
        photo.to_rgb(Image.new("La", (4, 4)), "odd.tif")


# --- sizes -------------------------------------------------------------------------------------

def test_a_169_megapixel_png_is_refused_from_its_header_in_under_a_second(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    path.write_bytes(png(13000, 13000, 8, 0))  # one grey: 0.2 MB on disk, 169 MB decoded
    assert path.stat().st_size < 1e6
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded a photo it should refuse"))
    start = time.perf_counter()
    with pytest.raises(DataError, match=rf"{path} is 13000×13000 pixels \(169 megapixels\), more than the 100 megapixels"):
        photo.load_photo(path)
    assert time.perf_counter() - start < 1.0


def test_a_photo_beyond_pils_own_limit_is_a_data_error_not_a_decompression_bomb_error(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png(20000, 20000, 8, 0, header_only=True))  # 400 megapixels: more than twice PIL's limit
    with pytest.raises(DataError, match=f"{path} is 400 megapixels"):
        photo.load_photo(path)


def test_pils_decompression_bomb_warning_is_a_refusal_that_names_the_size(tmp_path, monkeypatch):
    Image.new("RGB", (40, 30)).save(tmp_path / "small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # as if PIL's limit were 1000 pixels
    with pytest.raises(DataError, match=r"small.png is 40×30 pixels .* PIL reads without warning"):
        photo.load_photo(tmp_path / "small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    assert photo.load_photo(tmp_path / "small.png").size == (40, 30)


# --- broken files ------------------------------------------------------------------------------

def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(out, "JPEG")
    return out.getvalue()


@pytest.mark.parametrize(("content", "message"), [
    (b"", "is empty"),
    (b"a note, not an image\n", "is not an image PIL can read"),
    (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
     "is not an image PIL can read"),
    (jpeg_bytes()[:-2], "is not an image PIL can read .*truncated"),  # only its end-of-image marker lost
    (jpeg_bytes()[:len(jpeg_bytes()) // 2], "is not an image PIL can read .*truncated"),
    (jpeg_bytes()[:400], "is not an image PIL can read"),  # cut inside its headers
], ids=["empty", "text", "svg", "jpeg-without-its-end", "half-a-jpeg", "jpeg-headers-only"])
def test_a_broken_file_is_a_data_error_that_names_it(tmp_path, content, message):
    path = tmp_path / "holiday.jpg"
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"{path} {message}"):
        photo.load_photo(path)


def test_a_truncated_jpeg_is_refused_not_half_decoded(tmp_path):
    """PIL pads a cut-off image with grey only if a program sets ImageFile.LOAD_TRUNCATED_IMAGES;
    the course does not, and every cut point is refused."""
    whole = jpeg_bytes()
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    for cut in range(2, len(whole) - 200, 97):
        (tmp_path / "cut.jpg").write_bytes(whole[:-cut])
        with pytest.raises(DataError):
            photo.load_photo(tmp_path / "cut.jpg")


def test_a_missing_path_or_a_folder_is_no_image(tmp_path):
    with pytest.raises(DataError, match=f"No image at {tmp_path / 'missing.jpg'}"):
        photo.load_photo(tmp_path / "missing.jpg")
    with pytest.raises(DataError, match=f"No image at {tmp_path}"):
        photo.load_photo(tmp_path)


# --- formats and folders -------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", photo.PHOTO_SUFFIXES)
def test_every_photo_suffix_reads(tmp_path, suffix):
    Image.new("RGB", (48, 32), (200, 40, 40)).save(tmp_path / f"red{suffix}")
    read = pixels(tmp_path / f"red{suffix}")
    assert read.shape == (32, 48, 3) and np.abs(read - (200, 40, 40)).max() <= 12  # JPEG and WebP round a little


def test_the_data_modules_names_are_the_photo_modules():
    assert (data.load_photo, data.to_cifar_size, data.load_image) == (photo.load_photo, photo.to_cifar_size,
                                                                      photo.load_image)


def test_a_folder_is_read_with_every_skipped_file_named_and_why(tmp_path):
    for name in ("b.webp", "c.gif", "a.PNG"):
        Image.new("RGB", (20, 20), "blue").save(tmp_path / name)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("a note")
    (tmp_path / "README.md").write_text("# my photos")
    (tmp_path / "more").mkdir()
    (tmp_path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    photos, skipped = photo.read_folder(tmp_path)
    assert list(photos) == ["a.PNG", "b.webp", "c.gif"]
    assert all(p.mode == "RGB" and p.size == (20, 20) for p in photos.values())
    assert list(skipped) == ["README.md", "empty.jpg", "more", "notes.txt"]  # the hidden file passed over unnamed
    assert skipped["empty.jpg"] == "empty.jpg is empty (0 bytes): not an image."  # named, not by its whole path
    assert skipped["notes.txt"] == "notes.txt has none of the photo suffixes (.png .jpg .jpeg .bmp .gif .webp .tif .tiff)."
    assert skipped["more"] == f"more is a folder (only the files directly in {tmp_path} are read)."


def test_a_folder_with_no_readable_photo_says_so(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path} holds no photo .*: it is empty"):
        photo.read_folder(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=f"{tmp_path} holds no photo .*: broken.jpg is not an image PIL can read"):
        photo.read_folder(tmp_path)
    with pytest.raises(DataError, match=f"No folder at {tmp_path / 'nowhere'}"):
        photo.read_folder(tmp_path / "nowhere")
    with pytest.raises(DataError, match="is a file, not a folder"):
        photo.read_folder(tmp_path / "broken.jpg")
