"""Tests of tfglv.data.files: the user's own .npz files and image folders."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfglv import configs
from tfglv import data
from tfglv.data import files

from data_testlib import assert_value_error
from data_testlib import CIFAR_SUBSET
from data_testlib import first_batches
from data_testlib import tiny
from data_testlib import write_npz


# --- npz -------------------------------------------------------------------


def test_npz_train_test_arrays_with_labels(tmp_path):
  rng = np.random.RandomState(1)
  x_train = rng.randint(0, 256, (20, 16, 16, 3)).astype(np.uint8)
  x_test = rng.randint(0, 256, (6, 16, 16, 3)).astype(np.uint8)
  path = write_npz(tmp_path / "d.npz", x_train=x_train, x_test=x_test,
                   y_train=np.arange(20).reshape(20, 1) % 3,
                   y_test=np.arange(6) % 3)
  config = tiny(**{"data.dataset": "npz", "data.path": path})
  assert data.num_examples(config, "train") == 20
  images, labels = data.load_arrays(config, "test")
  np.testing.assert_array_equal(images, x_test)
  np.testing.assert_array_equal(labels["label"], np.arange(6) % 3)
  batch = first_batches(config, 1, batch_size=4)[0]
  assert batch["image"].shape == (4, 16, 16, 3)
  assert batch["label"].dtype == np.int64


def test_npz_single_array_splits_last_tenth_and_grey(tmp_path):
  x = np.random.RandomState(2).randint(0, 256, (50, 16, 16)).astype(np.uint8)
  path = write_npz(tmp_path / "grey.npz", x=x)
  config = tiny(**{"data.dataset": "npz", "data.path": path, "channels": "1"})
  train, train_labels = data.load_arrays(config, "train")
  test, _ = data.load_arrays(config, "test")
  np.testing.assert_array_equal(train, x[:45, ..., None])
  np.testing.assert_array_equal(test, x[45:, ..., None])
  assert (train_labels["label"] == -1).all()


def test_npz_real_cifar_subset():
  if not os.path.exists(CIFAR_SUBSET):
    pytest.skip(f"real CIFAR-10 subset not found at {CIFAR_SUBSET}")
  config = configs.override(configs.get("cifar10"), {
      "data.dataset": "npz", "data.path": CIFAR_SUBSET})
  with np.load(CIFAR_SUBSET) as archive:
    x_test, y_test = archive["x_test"], archive["y_test"]
    num_train = len(archive["x_train"])
  assert data.num_examples(config, "train") == num_train
  images, labels = data.load_arrays(config, "test", max_examples=300)
  np.testing.assert_array_equal(images, x_test[:300])
  np.testing.assert_array_equal(labels["label"],
                                y_test.reshape(-1)[:300].astype(np.int64))
  batch = first_batches(config, 1, batch_size=16)[0]
  assert batch["image"].shape == (16, 32, 32, 3)
  assert set(np.unique(batch["label"])) <= set(range(10))


def test_bad_npz_inputs(tmp_path):
  def npz_config(path, **fields):
    return tiny(**{"data.dataset": "npz", "data.path": str(path), **fields})

  assert_value_error(npz_config(tmp_path / "missing.npz"), "not found",
                     "missing.npz")
  assert_value_error(npz_config(""), "data.path")
  floats = write_npz(tmp_path / "f.npz",
                     x_train=np.zeros((4, 16, 16, 3), np.float32),
                     x_test=np.zeros((4, 16, 16, 3), np.float32))
  assert_value_error(npz_config(floats), "x_train", "float32", "uint8")
  other = write_npz(tmp_path / "o.npz", pictures=np.zeros((4, 16), np.uint8),
                    names=np.array(["a"]))
  assert_value_error(npz_config(other), "no image arrays", "pictures",
                     "uint8", "names")
  rank = write_npz(tmp_path / "r.npz", images=np.zeros((20, 768), np.uint8))
  assert_value_error(npz_config(rank), "rank 2", "[N, H, W, C]")
  nchw = write_npz(tmp_path / "c.npz",
                   images=np.zeros((20, 3, 16, 16), np.uint8))
  assert_value_error(npz_config(nchw), "channels-first")
  half = write_npz(tmp_path / "h.npz",
                   x_train=np.zeros((20, 16, 16, 3), np.uint8))
  assert_value_error(npz_config(half), "x_test")


# --- folder ----------------------------------------------------------------


def write_image(path, image, fmt="png"):
  encode = tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tf.io.write_file(path, encode(tf.constant(image)))


def test_folder_of_images(tmp_path):
  rng = np.random.RandomState(3)
  for i in range(40):
    size = (24, 20) if i % 2 else (16, 16)
    image = rng.randint(0, 256, size + (3,)).astype(np.uint8)
    kind = "cats" if i % 4 < 2 else "dogs"
    fmt = "jpg" if i % 5 == 0 else "png"
    write_image(str(tmp_path / kind / f"img{i:02d}.{fmt}"), image, fmt)
  (tmp_path / "notes.txt").write_text("not an image")
  config = tiny(**{"data.dataset": "folder", "data.path": str(tmp_path)})
  train_count = data.num_examples(config, "train")
  test_count = data.num_examples(config, "test")
  assert train_count + test_count == 40 and 0 < test_count < 15
  images, labels = data.load_arrays(config, "train")
  assert images.shape == (train_count, 16, 16, 3)
  assert set(labels["label"]) == {0, 1}  # cats, dogs
  np.testing.assert_array_equal(data.load_arrays(config, "test")[0],
                                data.load_arrays(config, "test")[0])
  grey = tiny(**{"data.dataset": "folder", "data.path": str(tmp_path),
                 "channels": "1"})
  assert first_batches(grey, 1, batch_size=4)[0]["image"].shape == (
      4, 16, 16, 1)


def test_bad_folder(tmp_path):
  assert_value_error(
      tiny(**{"data.dataset": "folder", "data.path": str(tmp_path / "no")}),
      "image folder not found")
  (tmp_path / "empty").mkdir()
  assert_value_error(
      tiny(**{"data.dataset": "folder", "data.path": str(tmp_path / "empty")}),
      "has no images", ".png")
  broken = tmp_path / "broken"
  broken.mkdir()
  tf.io.write_file(str(broken / "good.png"), tf.io.encode_png(
      np.zeros((16, 16, 3), np.uint8)))
  (broken / "notes.jpg").write_bytes(b"not an image at all")
  assert_value_error(
      tiny(**{"data.dataset": "folder", "data.path": str(broken)}),
      "1 of 2 files are not readable PNG/JPEG images (notes.jpg)")


def test_a_single_array_too_small_to_split_names_the_count_that_works(
    tmp_path):
  images = np.zeros((files.MIN_SINGLE_ARRAY_IMAGES, 4, 4, 1), np.uint8)
  assert files.MIN_SINGLE_ARRAY_IMAGES == 6  # round(5 * 0.1) is 0.
  np.savez(tmp_path / "enough.npz", images=images)
  splits = files.load_npz(str(tmp_path / "enough.npz"))
  assert (len(splits["train"]["image"]), len(splits["test"]["image"])) == (
      5, 1)
  np.savez(tmp_path / "few.npz", images=images[:-1])
  with pytest.raises(ValueError, match=r"5 images in 'images' are too few .* "
                                       r"need at least 6 images"):
    files.load_npz(str(tmp_path / "few.npz"))
