"""Tests of tfglv.data.sources: choosing a source, splits, shape checks."""

import numpy as np
import pytest

from tfglv import data

from data_testlib import assert_value_error
from data_testlib import first_batches
from data_testlib import tiny
from data_testlib import write_npz


def test_synthetic_source_splits_are_disjoint():
  config = tiny()
  train_images, _ = data.load_arrays(config, "train")
  test_images, _ = data.load_arrays(config, "test")
  assert len(test_images) == config.data.synthetic_size // 8
  assert not ({bytes(x) for x in train_images} &
              {bytes(x) for x in test_images})


def test_synthetic_batches_carry_factor_labels():
  config = tiny(**{"data.synthetic_size": "64"})
  batch = first_batches(config, 1)[0]
  assert batch["image"].shape == (8, 16, 16, 3)
  assert batch["image"].dtype == np.uint8
  assert set(batch) == {"image", "label", "shape", "palette"}
  assert data.label_keys(config) == ("label", "shape", "palette")
  images, labels = data.load_arrays(config, "test")
  assert images.shape == (8, 16, 16, 3)
  assert set(labels) == {"label", "shape", "palette"}
  assert all(v.dtype == np.int64 and v.shape == (8,) for v in labels.values())


def test_image_shape_mismatch_names_the_fix(tmp_path):
  rgb = write_npz(tmp_path / "rgb.npz",
                  images=np.zeros((20, 16, 16, 3), np.uint8))
  npz = {"data.dataset": "npz", "data.path": rgb}
  assert_value_error(tiny(**npz, channels="1"), "3 channels",
                     "set model.channels=3")
  assert_value_error(tiny(**npz, image_size="32"), "16x16",
                     "set model.image_size=16", "center_crop")


def test_unknown_dataset_and_split():
  assert_value_error(tiny(**{"data.dataset": "mnist"}), "Unknown dataset",
                     "synthetic", "cifar10", "npz", "folder")
  with pytest.raises(ValueError, match="Unknown split 'valid'"):
    data.make_dataset(tiny(), "valid", 4, training=False)
