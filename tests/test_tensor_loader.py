"""The tensor path: batches, normalisation, and augmentations drawn like torchvision's."""

import numpy as np
import pytest
import torch
from PIL import Image

from cifar_utils import data, loaders
from cifar_utils.data import ImageSet, Splits
from cifar_utils.tensor_loader import TensorLoader, random_crop

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def position_image() -> np.ndarray:
    """A 32x32 image whose red value encodes the row and green the column (never 0)."""
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    return np.stack([rows * 8 + 4, cols * 8 + 4, np.full((32, 32), 255)], -1).astype(np.uint8)


def draw_offsets(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Recover (dy, dx, flipped) of crops of position_image() from two centre pixels."""
    a, b = images[:, 16, 16], images[:, 16, 17]  # (N, 3) each
    flipped = b[:, 1].astype(int) < a[:, 1].astype(int)
    src_row = (a[:, 0].astype(int) - 4) // 8
    src_col = (a[:, 1].astype(int) - 4) // 8
    dy = src_row - 16 + 4
    dx = np.where(flipped, src_col - 15 + 4, src_col - 16 + 4)
    return dy, dx, flipped


def chi_square_uniform(values: np.ndarray, k: int) -> float:
    counts = np.bincount(values, minlength=k)
    expected = len(values) / k
    return float(((counts - expected) ** 2 / expected).sum())


def test_batches_are_normalised_and_complete():
    rng = np.random.default_rng(0)
    images = ImageSet(rng.integers(0, 256, (70, 32, 32, 3), dtype=np.uint8), np.arange(70) % 10)
    loader = TensorLoader(images, 32, MEAN, STD)
    batches = list(loader)
    assert len(loader) == 3 and [len(y) for _, y in batches] == [32, 32, 6]
    x = torch.cat([b[0] for b in batches])
    expected = (torch.from_numpy(images.images).permute(0, 3, 1, 2).float() / 255
                - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(x, expected, atol=1e-5)
    assert len(TensorLoader(images, 32, MEAN, STD, drop_last=True)) == 2


def test_same_as_torchvision_eval_pipeline():
    rng = np.random.default_rng(1)
    images = ImageSet(rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), np.zeros(8, int))
    fast = next(iter(TensorLoader(images, 8, MEAN, STD)))[0]
    tf = loaders.eval_transforms(MEAN, STD)
    slow = torch.stack([tf(Image.fromarray(img)) for img in images.images])
    assert torch.allclose(fast, slow, atol=1e-5)


def test_a_crop_is_a_window_of_the_zero_padded_image():
    x = torch.from_numpy(position_image()).permute(2, 0, 1)[None].repeat(50, 1, 1, 1)
    out = random_crop(x, 4, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(50):
        matches = [(dy, dx) for dy in range(9) for dx in range(9)
                   if torch.equal(out[i], padded[i, :, dy:dy + 32, dx:dx + 32])]
        assert len(matches) == 1


def test_tensor_path_draws_the_augmentations_torchvision_draws():
    n = 3000
    image = position_image()
    images = ImageSet(np.repeat(image[None], n, 0), np.zeros(n, dtype=np.int64))
    loader = TensorLoader(images, 500, (0, 0, 0), (1 / 255,) * 3, shuffle=True, augment=True)
    fast = torch.cat([x for x, _ in loader]).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    torch.manual_seed(0)
    tf = loaders.train_transforms((0, 0, 0), (1 / 255,) * 3)
    pil = Image.fromarray(image)
    slow = np.stack([tf(pil).round().to(torch.uint8).permute(1, 2, 0).numpy() for _ in range(n)])
    critical = {9: 26.1, 2: 10.8}  # chi-square at p = 0.001 for 8 and 1 degrees of freedom
    for drawn in (fast, slow):
        dy, dx, flipped = draw_offsets(drawn)
        assert dy.min() >= 0 and dy.max() <= 8 and dx.min() >= 0 and dx.max() <= 8
        assert chi_square_uniform(dy, 9) < critical[9]
        assert chi_square_uniform(dx, 9) < critical[9]
        assert chi_square_uniform(flipped.astype(int), 2) < critical[2]
    # and the two paths agree with each other: same offsets and flip rates, within noise
    f, s = draw_offsets(fast), draw_offsets(slow)
    for a, b in zip(f, s):
        assert abs(np.mean(a) - np.mean(b)) < 0.2 * max(1.0, np.std(b))


def test_shuffle_and_augmentation_follow_the_global_seed_like_a_dataloader():
    images = ImageSet(np.repeat(position_image()[None], 40, 0), np.arange(40))
    loader = TensorLoader(images, 10, MEAN, STD, shuffle=True, augment=True)

    def one_pass(seed):
        torch.manual_seed(seed)
        return [(x, y) for x, y in loader]

    first, again, other = one_pass(5), one_pass(5), one_pass(6)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first, other))
    assert sorted(torch.cat([y for _, y in first]).tolist()) == list(range(40))


def test_evaluation_draws_nothing_from_the_global_stream():
    images = ImageSet(np.zeros((8, 32, 32, 3), np.uint8), np.arange(8))
    torch.manual_seed(0)
    list(TensorLoader(images, 4, MEAN, STD))
    drawn = torch.rand(2)
    torch.manual_seed(0)
    assert torch.equal(drawn, torch.rand(2))


@pytest.mark.parametrize("pipeline", loaders.PIPELINES)
def test_make_loaders_gives_the_same_kind_of_batch(pipeline):
    rng = np.random.default_rng(2)
    images = ImageSet(rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8), np.arange(40) % 10)
    dl = loaders.make_loaders(Splits(images, images, images), 16, torch.device("cpu"),
                              pipeline=pipeline, num_workers=0)
    x, y = next(iter(dl.train))
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(dl.train) == 2 and len(dl.test) == 3  # train drops the ragged last batch
    assert dl.train_images == 40 and dl.batch_size == 16
    assert np.allclose(dl.mean, data.channel_stats(images.images)[0])  # the training split's own


def test_normalise_one_image_as_the_eval_pipeline_does():
    image = position_image()
    expected = loaders.eval_transforms(MEAN, STD)(Image.fromarray(image))[None]
    assert torch.allclose(loaders.normalise(image, MEAN, STD), expected, atol=1e-6)


def test_unknown_pipeline_is_refused():
    images = ImageSet(np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4, int))
    with pytest.raises(ValueError, match="Unknown pipeline 'pil'"):
        loaders.make_loaders(Splits(images, images, images), 2, torch.device("cpu"), pipeline="pil")


def test_normalise_takes_one_image_or_a_batch_and_scales_each_channel():
    images = np.zeros((2, 4, 4, 3), np.uint8)
    images[1, ..., 0] = 255  # the second image: full red
    x = loaders.normalise(images, (0.5, 0.5, 0.5), (0.25, 0.5, 0.5))
    assert x.shape == (2, 3, 4, 4)
    assert x[1, 0].unique().tolist() == [2.0] and x[0, 0].unique().tolist() == [-2.0]  # (1 - 0.5) / 0.25
    assert x[1, 1].unique().tolist() == [-1.0]  # (0 - 0.5) / 0.5
    assert torch.equal(loaders.normalise(images[1], (0.5, 0.5, 0.5), (0.25, 0.5, 0.5)), x[1:])
