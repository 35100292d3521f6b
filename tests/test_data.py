"""Finding the data: every source the README lists, and every bad input it names."""

from __future__ import annotations

import io
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers import md5, pack, snapshot, write_image_folder, write_torchvision_layout
from PIL import Image

from cifar_utils import data, folders, settings
from cifar_utils.data import DataError


def test_torchvision_layout_loads_both_datasets(torchvision_root):
    root, dataset, expected = torchvision_root
    cifar = data.load(dataset, root, download=False)
    x, y = expected["train"][0]
    assert cifar.source == "torchvision" and cifar.dataset == dataset
    assert cifar.classes == data.class_names(dataset)
    assert cifar.train.images.shape == (50, 32, 32, 3) and cifar.train.images.dtype == np.uint8
    # torchvision stores CHW rows; the loaded image is HWC with the same pixels
    assert np.array_equal(cifar.train.images[0], x[0].reshape(3, 32, 32).transpose(1, 2, 0))
    assert list(cifar.train.labels[: len(y)]) == y
    assert len(cifar.test) == 20


def test_official_archive_placed_by_hand_is_verified_and_extracted(tmp_path, monkeypatch):
    build = tmp_path / "build"
    write_torchvision_layout(build, "cifar10", monkeypatch=monkeypatch)
    root = tmp_path / "data"
    root.mkdir()
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(build / "cifar-10-batches-py", "cifar-10-batches-py")
    monkeypatch.setattr(data.TORCHVISION_CLASSES["cifar10"], "tgz_md5", md5(archive))
    before = archive.read_bytes()
    cifar = data.load("cifar10", root, download=False)
    assert cifar.source == "torchvision" and len(cifar.train) == 50
    assert archive.read_bytes() == before  # the user's archive is left as it was


def test_archive_with_wrong_checksum_is_refused_and_nothing_changes(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"\x1f\x8b half a download")
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match="fails its checksum.*Download it again"):
        data.load("cifar10", tmp_path, download=False)
    assert snapshot(tmp_path) == before


def test_damaged_torchvision_folder_names_the_file(tmp_path, monkeypatch):
    write_torchvision_layout(tmp_path, "cifar10", monkeypatch=monkeypatch)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])  # truncated
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match="data_batch_3 fails its checksum"):
        data.load("cifar10", tmp_path, download=False)
    assert snapshot(tmp_path) == before


def test_unknown_dataset_names_the_choices():
    with pytest.raises(DataError, match="Unknown dataset 'cifar1O'.*cifar10, cifar100"):
        data.load("cifar1O", "sample")


def test_nothing_found_without_download_names_the_four_ways(tmp_path):
    with pytest.raises(DataError) as err:
        data.load("cifar10", tmp_path, download=False)
    message = str(err.value)
    for way in ("torchvision's layout", "DOWNLOAD=True", "image folder", 'DATA_DIR="sample"'):
        assert way in message


def test_failed_download_falls_back_to_the_sample_and_leaves_nothing(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network here")
    monkeypatch.setattr(urllib.request, "urlopen", offline)  # torchvision's real download path
    cifar = data.load("cifar10", tmp_path / "data", download=True)
    assert cifar.source == "sample"
    assert "downloading cifar10 failed" in cifar.banner and "no network here" in cifar.banner
    assert list((tmp_path / "data").iterdir()) == []  # no half-downloaded file left behind


def test_image_folder_loads_with_canonical_class_order(tmp_path):
    write_image_folder(tmp_path, per_class=2)
    cifar = data.load("cifar10", tmp_path, download=False)
    assert cifar.source == "folder"
    assert cifar.train.images.shape == (20, 32, 32, 3)
    assert np.array_equal(np.bincount(cifar.train.labels), np.full(10, 2))
    assert cifar.classes[0] == "airplane"


@pytest.mark.parametrize("name,top", [("cifar.zip", ""), ("cifar.tar.gz", "export/")])
def test_image_folder_archives_load_without_extracting(tmp_path, name, top):
    folder = write_image_folder(tmp_path / "folder", per_class=1)
    archive = pack(folder, tmp_path / name, top=top)
    before = snapshot(tmp_path)
    cifar = data.load("cifar10", archive)
    assert len(cifar.train) == 10 and len(cifar.test) == 10
    after = snapshot(tmp_path)
    assert set(after) - set(before) == {data.decoded_arrays_path(archive).name}  # its arrays, nothing extracted
    assert {k: after[k] for k in before} == before


def test_an_archive_is_decoded_once_and_again_when_it_changes_or_its_arrays_are_damaged(tmp_path, monkeypatch):
    folder = write_image_folder(tmp_path / "folder", per_class=2)
    archive = pack(folder, tmp_path / "cifar.tar.gz")
    archive.chmod(0o444)  # a data set shared read-only with a class: its arrays are readable by all
    first = data.load("cifar10", archive)
    assert data.decoded_arrays_path(archive).stat().st_mode & 0o777 == 0o644
    archive.chmod(0o644)
    decode = folders._decode_image_folder
    monkeypatch.setattr(folders, "_decode_image_folder", lambda *a: pytest.fail("decoded an unchanged archive again"))
    again = data.load("cifar10", archive)
    assert again.classes == first.classes and again.describe() == first.describe()
    for split in ("train", "test"):
        assert np.array_equal(getattr(again, split).images, getattr(first, split).images)
        assert np.array_equal(getattr(again, split).labels, getattr(first, split).labels)
    monkeypatch.setattr(folders, "_decode_image_folder", decode)

    Image.new("RGB", (32, 32), (255, 0, 0)).save(folder / "train" / "airplane" / "0000.png")
    pack(folder, archive)  # the same name, new contents
    changed = data.load("cifar10", archive)
    assert changed.train.images[0].tolist() == np.full((32, 32, 3), [255, 0, 0]).tolist()

    data.decoded_arrays_path(archive).write_bytes(b"half a file")
    assert np.array_equal(data.load("cifar10", archive).train.images, changed.train.images)


def test_folders_named_by_label_index(tmp_path):
    write_image_folder(tmp_path, classes=[str(i) for i in range(10)], per_class=1)
    cifar = data.load("cifar10", tmp_path)
    assert cifar.classes == data.class_names("cifar10")
    assert sorted(cifar.train.labels) == list(range(10))


def test_truncated_archive_gets_a_clear_error(tmp_path):
    archive = pack(write_image_folder(tmp_path / "f", per_class=2), tmp_path / "c.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match="truncated or damaged"):
        data.load("cifar10", archive)
    assert snapshot(tmp_path) == before


def test_empty_folder_is_refused(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="no images in train and test"):
        data.load("cifar10", tmp_path)


def test_mislabelled_folders_are_refused(tmp_path):
    write_image_folder(tmp_path, classes=["cat", "dog"], per_class=1)
    with pytest.raises(DataError, match="do not match cifar10's classes.*unexpected: \\[\\]"):
        data.load("cifar10", tmp_path)


def test_train_and_test_with_different_classes_are_refused(tmp_path):
    write_image_folder(tmp_path, per_class=1)
    (tmp_path / "test" / "airplane" / "0000.png").rename(tmp_path / "stray.png")
    (tmp_path / "test" / "airplane").rmdir()
    with pytest.raises(DataError, match=r"the class folders of train/ and test/ differ \(test/ lacks airplane\)"):
        data.load("cifar10", tmp_path)


def test_cifar10_folder_given_as_cifar100_is_refused(tmp_path):
    write_image_folder(tmp_path, per_class=1)
    with pytest.raises(DataError, match="set DATASET to the data set they hold"):
        data.load("cifar100", tmp_path)


def test_images_of_the_wrong_size_are_refused(tmp_path):
    write_image_folder(tmp_path, per_class=1, size=(64, 48))
    with pytest.raises(DataError, match="is 64x48 pixels; CIFAR images are 32x32"):
        data.load("cifar10", tmp_path)


def test_unreadable_image_names_the_file(tmp_path):
    write_image_folder(tmp_path, per_class=1)
    (tmp_path / "train" / "cat" / "0000.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="train/cat/0000.png is not a readable image"):
        data.load("cifar10", tmp_path)


def test_a_file_that_is_not_an_archive_is_refused(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(DataError, match="not an archive"):
        data.load("cifar10", notes)


def test_sample_is_real_balanced_and_says_so():
    cifar = data.load("cifar10", "sample")
    assert cifar.source == "sample" and "bundled CIFAR-10 sample" in cifar.banner
    assert np.array_equal(np.bincount(cifar.train.labels), np.full(10, 500))
    assert np.array_equal(np.bincount(cifar.test.labels), np.full(10, 100))
    mean, _ = data.channel_stats(cifar.train.images)
    assert 0.4 < mean[0] < 0.6  # natural photos, not noise or a blank


def test_cifar100_on_the_sample_is_labelled_a_stand_in():
    cifar = data.load("cifar100", "sample")
    assert cifar.dataset == "cifar100" and cifar.num_classes == 10
    assert "no CIFAR-100 images" in cifar.banner


def test_split_is_seeded_stratified_and_disjoint():
    cifar = data.load("cifar10", "sample")
    splits = data.split(cifar, 0.1, seed=3, train_size=2000, test_size=500)
    train, val, test = splits.train, splits.val, splits.test
    assert (len(train), len(val), len(test)) == (1800, 200, 500)
    assert splits.describe() == "1,800 train / 200 validation / 500 test images"
    assert np.array_equal(np.bincount(val.labels), np.full(10, 20))
    assert np.array_equal(np.bincount(test.labels), np.full(10, 50))
    again = data.split(cifar, 0.1, seed=3, train_size=2000, test_size=500)
    assert np.array_equal(again.val.images, val.images)
    # no validation image is also a training image
    train_rows = {img.tobytes() for img in train.images}
    assert not any(img.tobytes() in train_rows for img in val.images)
    other = data.split(cifar, 0.1, seed=4, train_size=2000, test_size=500)
    assert not np.array_equal(other.val.images, val.images)


def test_kfold_validates_every_kept_image_exactly_once_in_balanced_folds():
    cifar = data.load("cifar10", "sample")
    folds = data.kfold(cifar, 5, seed=0, train_size=2000, test_size=300)
    kept = data.split(cifar, 0.1, seed=0, train_size=2000).train.images  # the same kept subset
    assert len(folds) == 5 and all(len(f.val) == 400 and len(f.train) == 1600 for f in folds)
    assert all(np.array_equal(np.bincount(f.val.labels), np.full(10, 40)) for f in folds)
    held_out = [img.tobytes() for f in folds for img in f.val.images]
    assert len(held_out) == len(set(held_out)) == 2000
    assert {img.tobytes() for img in kept} <= set(held_out)
    for f in folds:  # a fold never trains on what it validates on
        assert not {img.tobytes() for img in f.train.images} & {img.tobytes() for img in f.val.images}
        assert len(f.test) == 300
    again = data.kfold(cifar, 5, seed=0, train_size=2000, test_size=300)
    assert np.array_equal(again[2].val.images, folds[2].val.images)
    with pytest.raises(ValueError, match="at least 2, not 1"):
        data.kfold(cifar, 1, seed=0)


def test_channel_stats_match_numpy():
    images = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    mean, std = data.channel_stats(images)
    assert np.allclose(mean, (images / 255).mean(axis=(0, 1, 2)))
    assert np.allclose(std, (images / 255).std(axis=(0, 1, 2), ddof=1))


def test_load_image_crops_and_shrinks_any_photo(tmp_path):
    from PIL import Image
    Image.new("RGB", (120, 80), (200, 10, 10)).save(tmp_path / "photo.jpg")
    image = data.load_image(tmp_path / "photo.jpg")
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert image[..., 0].mean() > 150
    with pytest.raises(DataError, match="No image at"):
        data.load_image(tmp_path / "missing.jpg")


class FakeResponse(io.BytesIO):
    """What urllib.request.urlopen returns, serving fixed bytes."""

    def __init__(self, payload: bytes, url: str):
        super().__init__(payload)
        self.url, self.length = url, len(payload)


def official_archive(tmp_path, monkeypatch) -> bytes:
    """The bytes of a fake cifar-10-python.tar.gz whose MD5s torchvision will accept."""
    build = tmp_path / "build"
    write_torchvision_layout(build, "cifar10", monkeypatch=monkeypatch)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(build / "cifar-10-batches-py", "cifar-10-batches-py")
    monkeypatch.setattr(data.TORCHVISION_CLASSES["cifar10"], "tgz_md5", md5(archive))
    return archive.read_bytes()


def test_a_download_goes_through_torchvision_and_lands_in_data_dir(tmp_path, monkeypatch):
    payload = official_archive(tmp_path, monkeypatch)
    urls = []

    def serve(request, *args, **kwargs):
        urls.append(request.full_url)
        return FakeResponse(payload, request.full_url)
    monkeypatch.setattr(urllib.request, "urlopen", serve)  # torchvision's own download code runs
    root = tmp_path / "data"
    cifar = data.load("cifar10", root, download=True)
    assert cifar.source == "torchvision" and len(cifar.train) == 50
    assert urls and all(u.endswith("cifar-10-python.tar.gz") for u in urls)
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    assert data.load("cifar10", root, download=False).source == "torchvision"  # found next time


def test_official_archive_given_by_its_path(tmp_path, monkeypatch):
    payload = official_archive(tmp_path, monkeypatch)
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "cifar-10-python.tar.gz").write_bytes(payload)
    cifar = data.load("cifar10", folder / "cifar-10-python.tar.gz", download=False)
    assert cifar.source == "torchvision" and len(cifar.test) == 20


def test_the_class_split_gives_two_halves_that_share_no_class_and_no_image():
    cifar = data.load("cifar10", "sample")
    source, target = data.class_split(cifar)
    assert source.classes == ["airplane", "automobile", "bird", "cat", "deer"]
    assert target.classes == ["dog", "frog", "horse", "ship", "truck"]
    assert len(source.train) + len(target.train) == len(cifar.train)
    assert len(source.test) + len(target.test) == len(cifar.test)
    for half, offset in ((source, 0), (target, 5)):
        assert set(half.train.labels) == set(range(5)) and set(half.test.labels) == set(range(5))
        # each image keeps its own class under the renumbered label
        frog = half.train.images[half.train.labels == 1][0]
        originals = cifar.train.images[cifar.train.labels == offset + 1]
        assert any(np.array_equal(frog, img) for img in originals)
    assert data.fingerprint(source, settings.resolve(profile="smoke"))["classes"] != \
        data.fingerprint(target, settings.resolve(profile="smoke"))["classes"]


@pytest.mark.parametrize("packed", ["folder", "tar.gz"])
def test_an_empty_class_folder_is_named_as_empty(tmp_path, packed):
    root = write_image_folder(tmp_path / "images", per_class=2)
    for image in (root / "train" / "dog").iterdir():
        image.unlink()
    source = root
    if packed == "tar.gz":  # as `tar czf images.tar.gz train test` packs it: folders are members too
        source = tmp_path / "images.tar.gz"
        with tarfile.open(source, "w:gz") as archive:
            for split in ("train", "test"):
                archive.add(root / split, arcname=split)
    with pytest.raises(DataError, match=r"train/dog/ holds no images"):
        data.load("cifar10", source, download=False)


@pytest.mark.parametrize("download", [False, True])
def test_a_data_set_one_folder_down_is_named_with_the_path_to_use(tmp_path, download, monkeypatch):
    write_image_folder(tmp_path / "datasets" / "cifar", per_class=2)
    monkeypatch.setattr(data, "_download", lambda *a: pytest.fail("the data is there: no download"))
    with pytest.raises(DataError, match=f"set DATA_DIR to {tmp_path / 'datasets' / 'cifar'}"):
        data.load("cifar10", tmp_path / "datasets", download=download)


def test_a_photo_with_transparency_lies_on_white_and_a_grey_one_becomes_rgb(tmp_path):
    clear = np.zeros((40, 40, 4), np.uint8)  # every pixel black but fully transparent
    clear[10:30, 10:30] = (200, 0, 0, 255)  # an opaque red square in the middle
    Image.fromarray(clear, "RGBA").save(tmp_path / "alpha.png")
    photo = np.asarray(data.load_photo(tmp_path / "alpha.png"))
    assert photo.shape == (40, 40, 3) and tuple(photo[0, 0]) == (255, 255, 255) and tuple(photo[20, 20]) == (200, 0, 0)
    Image.fromarray(np.full((50, 70), 90, np.uint8), "L").save(tmp_path / "grey.png")
    grey = data.load_image(tmp_path / "grey.png")
    assert grey.shape == (32, 32, 3) and grey.dtype == np.uint8 and (grey == 90).all()


def test_a_phone_photo_is_turned_upright_as_its_exif_tag_says(tmp_path):
    pixels = np.zeros((30, 60, 3), np.uint8)
    pixels[:, :30] = 255  # white on the left half, as the sensor stored it
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright = np.asarray(data.load_photo(tmp_path / "phone.jpg"))
    assert upright.shape == (60, 30, 3)  # portrait, as the phone showed it
    assert upright[:25].mean() > 200 and upright[35:].mean() < 50  # the white half is now on top


@pytest.mark.parametrize("content", [b"", b"a note, not an image\n"], ids=["empty", "text"])
def test_an_empty_or_non_image_file_gets_a_message_naming_it(tmp_path, content):
    path = tmp_path / "holiday.jpg"
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"{path} is (empty|not an image)"):
        data.load_image(path)


def test_the_cifar100_class_names_are_its_hundred_fine_labels_in_torchvisions_order():
    names = data.class_names("cifar100")
    assert len(names) == len(set(names)) == 100
    assert names == sorted(names)  # torchvision lists the fine labels alphabetically, as the meta file does
    assert names[:3] == ["apple", "aquarium_fish", "baby"] and names[90:93] == ["train", "trout", "tulip"]


def test_the_bundled_sample_leaves_no_decoded_arrays_in_the_package():
    sample = Path(data.__file__).parent / "sample" / data.SAMPLE_ARCHIVE
    assert len(data.load_sample().train) == 5000
    assert not data.decoded_arrays_path(sample).exists()
