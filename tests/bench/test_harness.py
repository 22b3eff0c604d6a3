"""bench.harness: the images a benchmark times on (never its speed)."""

import numpy as np
import pytest

from bench import harness


def _npz(path, shape, count=5):
  images = np.random.RandomState(0).randint(0, 256, (count,) + shape,
                                            dtype=np.uint8)
  np.savez(path, images=images)
  return str(path), images


def test_npz_images_repeat_to_the_count(tmp_path):
  path, images = _npz(tmp_path / "small.npz", (32, 32, 3), count=10)
  loaded = harness.load_images(16, npz=path).numpy()
  train = images[:9]  # The file's last 10% is its test split.
  assert loaded.shape == (16, 32, 32, 3)
  np.testing.assert_array_equal(loaded[:9], train)
  np.testing.assert_array_equal(loaded[9:], train[:7])


def test_an_npz_of_another_shape_is_named(tmp_path):
  path, _ = _npz(tmp_path / "gray.npz", (28, 28, 1), count=10)
  with pytest.raises(ValueError, match=r"images are 28x28x1; this "
                                       r"benchmark's models take 32x32x3"):
    harness.load_images(16, npz=path)
  # A benchmark of grayscale models takes it.
  assert harness.load_images(3, 28, npz=path, channels=1).shape == (3, 28,
                                                                     28, 1)


def test_without_npz_any_shape_gets_pixels():
  images = harness.load_images(4, 16, channels=1)
  assert images.shape == (4, 16, 16, 1) and images.dtype == np.uint8
  assert "fresh clone" in harness.npz_help()
