"""Helpers shared by the tests of tfglv.data (tests/data/)."""

import os

import numpy as np
import pytest

from tfglv import configs
from tfglv import data

# The real CIFAR-10 subset beside the checkout; tests that need it skip
# where it is absent.
CIFAR_SUBSET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                            "..", "shared", "data", "cifar10_subset.npz")


def tiny(**fields):
  """The tiny config with dotted `fields` overridden."""
  return configs.override(configs.get("tiny"), fields)


def first_batches(config, count, **kwargs):
  """The first `count` training batches of `config`, as numpy."""
  kwargs.setdefault("batch_size", 8)
  kwargs.setdefault("training", True)
  dataset = data.make_dataset(config, "train", **kwargs)
  return list(dataset.take(count).as_numpy_iterator())


def assert_batches_equal(first, second):
  assert len(first) == len(second)
  for a, b in zip(first, second):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def write_npz(path, **arrays):
  np.savez(path, **arrays)
  return str(path)


def assert_value_error(config, *fragments, split="train"):
  """make_dataset(config) raises a ValueError naming every fragment."""
  with pytest.raises(ValueError) as error:
    data.make_dataset(config, split, 4, training=True)
  for fragment in fragments:
    assert fragment in str(error.value), str(error.value)
