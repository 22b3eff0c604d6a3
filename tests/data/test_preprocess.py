"""Tests of tfglv.data.preprocess: augmentations and centre crops."""

import numpy as np
import tensorflow as tf

from tfglv import data
from tfglv.data import preprocess

from data_testlib import assert_batches_equal
from data_testlib import assert_value_error
from data_testlib import first_batches
from data_testlib import tiny
from data_testlib import write_npz


def test_flip_and_cifar_augmentations_are_seeded_and_correct():
  config = tiny(**{"data.synthetic_size": "32"})
  images, _ = data.load_arrays(config, "train")
  originals = {bytes(x): x for x in images}
  for augmentation in ("flip", "cifar"):
    augmented = tiny(**{"data.synthetic_size": "32",
                        "data.augmentation": augmentation})
    batches = first_batches(augmented, 4, batch_size=8, seed=1)
    assert_batches_equal(batches, first_batches(augmented, 4, batch_size=8,
                                                seed=1))
    plain = first_batches(config, 4, batch_size=8, seed=1)
    changed = 0
    for got, before in zip(batches, plain):
      assert got["image"].shape == (8, 16, 16, 3)
      for image, source in zip(got["image"], before["image"]):
        source = originals[bytes(source)]
        changed += not np.array_equal(image, source)
        if augmentation == "flip":
          assert (np.array_equal(image, source) or
                  np.array_equal(image, source[:, ::-1]))
        else:
          padded = np.pad(source, [(4, 4), (4, 4), (0, 0)], mode="reflect")
          crops = [padded[i:i + 16, j:j + 16] for i in range(9)
                   for j in range(9)]
          assert any(np.array_equal(image, c) or
                     np.array_equal(image, c[:, ::-1]) for c in crops)
    assert changed > 8
  # Evaluation never applies random augmentation.
  eval_config = tiny(**{"data.synthetic_size": "32",
                        "data.augmentation": "cifar"})
  np.testing.assert_array_equal(data.load_arrays(eval_config, "test")[0],
                                data.load_arrays(config, "test")[0])


def test_center_crop_resizes_train_and_test(tmp_path):
  rng = np.random.RandomState(0)
  images = rng.randint(0, 256, size=(30, 24, 40, 3)).astype(np.uint8)
  path = write_npz(tmp_path / "wide.npz", images=images)
  config = tiny(**{"data.dataset": "npz", "data.path": path,
                   "data.augmentation": "center_crop"})
  for split in ("train", "test"):
    got, _ = data.load_arrays(config, split)
    assert got.shape[1:] == (16, 16, 3) and got.dtype == np.uint8
  train = first_batches(config, 2)
  assert_batches_equal(train, first_batches(config, 2))
  # A square image of the right size passes through unchanged.
  square = tf.constant(images[0, :16, :16])
  np.testing.assert_array_equal(
      preprocess.center_crop_and_resize(square, 16), square)
  # The crop is centred: 24x40 keeps columns 8..31 before resizing.
  centre = preprocess.center_crop_and_resize(tf.constant(images[0]), 24)
  np.testing.assert_array_equal(centre, images[0][:, 8:32])


def test_unknown_augmentation():
  assert_value_error(tiny(**{"data.augmentation": "rotate"}),
                     "Unknown augmentation", "center_crop")
