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
  # Damaged files (tests/data/test_file_checks.py has every kind).
  np.save(tmp_path / "single.npy", np.zeros((20, 16, 16, 3), np.uint8))
  os.rename(tmp_path / "single.npy", tmp_path / "single.npz")
  assert_value_error(npz_config(tmp_path / "single.npz"), "single.npz",
                     "is a single .npy array (np.save), not an .npz archive")
  damaged = write_npz(tmp_path / "d.npz",
                      x_train=np.zeros((20, 16, 16, 3), np.uint8),
                      x_test=np.zeros((20, 16, 16, 3), np.uint8))
  content = bytearray(open(damaged, "rb").read())
  content[content.find(b"x_test.npy") + 300] ^= 0xFF  # In its data.
  open(damaged, "wb").write(bytes(content))
  assert_value_error(npz_config(damaged), damaged,
                     "member 'x_test' is damaged: Bad CRC-32")


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
      "1 of 2 files are not readable PNG/JPEG images - notes.jpg: not a PNG "
      "or JPEG file (it starts with b'not an i'). Remove or repair them, or "
      "set data.on_bad_image=skip to train without them.")


def bad_image_folder(root, num_good=30):
  """`num_good` PNGs in two classes, plus 12 unreadable files of four
  kinds; returns the names of the bad files."""
  rng = np.random.RandomState(4)
  for i in range(num_good):
    write_image(str(root / ("cats" if i % 2 else "dogs") / f"{i:02d}.png"),
                rng.randint(0, 256, (16, 16, 3)).astype(np.uint8))
  whole_jpeg = tf.io.encode_jpeg(
      rng.randint(0, 256, (16, 16, 3)).astype(np.uint8)).numpy()
  bad = {}
  for i in range(3):
    bad[f"cats/text{i}.png"] = b"a text file named .png"
    bad[f"cats/zero{i}.jpg"] = b""
    bad[f"dogs/cut{i}.jpg"] = whole_jpeg[:len(whole_jpeg) // 2]
    bad[f"dogs/cut{i}.jpeg"] = whole_jpeg[:-1]
  for name, content in bad.items():
    (root / name).write_bytes(content)
  return sorted(bad)


def test_unreadable_images_stop_the_run_up_front_naming_ten(tmp_path):
  bad = bad_image_folder(tmp_path)
  with pytest.raises(ValueError) as error:
    data.num_examples(tiny(**{"data.dataset": "folder",
                              "data.path": str(tmp_path)}), "train")
  message = str(error.value)
  assert "12 of 42 files are not readable PNG/JPEG images - " in message
  named = [name for name in bad if f"{name}: " in message]
  assert len(named) == files.MAX_NAMED_FILES
  assert "; and 2 more. Remove or repair them" in message
  assert "cats/text0.png: not a PNG or JPEG file" in message
  assert "cats/zero0.jpg: empty (0 bytes)" in message
  assert "dogs/cut0.jpeg: truncated JPEG (no end-of-image marker" in message
  assert "\n" not in message


def test_skip_leaves_unreadable_images_out_with_one_warning(tmp_path, caplog):
  bad = bad_image_folder(tmp_path)
  config = tiny(**{"data.dataset": "folder", "data.path": str(tmp_path),
                   "data.on_bad_image": "skip"})
  with caplog.at_level("WARNING"):
    counts = [data.num_examples(config, split) for split in ("train", "test")]
    images, labels = data.load_arrays(config, "train")  # Decodes every one.
  assert sum(counts) == 30
  assert images.shape == (counts[0], 16, 16, 3)
  assert set(labels["label"]) == {0, 1}  # cats, dogs: as without bad files.
  warnings = [r.getMessage() for r in caplog.records
              if "not readable PNG/JPEG" in r.getMessage()]
  assert len(warnings) == 1, warnings  # Not once per pipeline.
  assert "12 of 42 files" in warnings[0] and "; and 2 more" in warnings[0]
  assert "Skipped (data.on_bad_image=skip)" in warnings[0]
  assert sum(f"{name}: " in warnings[0] for name in bad) == 10
  # A folder of nothing but bad files stops the run even when skipping.
  only_bad = tmp_path / "only_bad"
  only_bad.mkdir()
  (only_bad / "zero.png").write_bytes(b"")
  with pytest.raises(ValueError, match="1 of 1 files are not readable"):
    files.load_folder(str(only_bad), on_bad_image="skip")


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
