"""Tests of tfglv.data.synthetic: the embedded shapes dataset."""

import numpy as np
import pytest

from tfglv.data import synthetic


def test_generate_is_deterministic_and_seeded():
  first = synthetic.generate(300, 16, 3, seed=(1, 1))
  again = synthetic.generate(300, 16, 3, seed=(1, 1))
  other = synthetic.generate(300, 16, 3, seed=(1, 2))
  for key in first:
    np.testing.assert_array_equal(first[key], again[key])
  train = {bytes(image) for image in first["image"]}
  assert not train & {bytes(image) for image in other["image"]}


@pytest.mark.parametrize("size,channels", [(16, 3), (32, 1), (64, 3)])
def test_synthetic_shapes_dtypes_and_factors(size, channels):
  columns = synthetic.generate(600, size, channels, seed=7)
  assert columns["image"].shape == (600, size, size, channels)
  assert columns["image"].dtype == np.uint8
  for key in ("label", "shape", "palette"):
    assert columns[key].dtype == np.int64 and columns[key].shape == (600,)
  np.testing.assert_array_equal(columns["label"], columns["shape"])
  shape_counts = np.bincount(columns["shape"],
                             minlength=len(synthetic.SHAPE_NAMES))
  assert shape_counts.max() - shape_counts.min() <= 1
  palette_counts = np.bincount(columns["palette"],
                               minlength=len(synthetic.PALETTES))
  expected = 600 / len(synthetic.PALETTES)
  assert palette_counts.min() > 0.5 * expected
  assert palette_counts.max() < 1.5 * expected
  # Local detail: images sharing both global factors still differ.
  same = np.flatnonzero((columns["shape"] == 0) & (columns["palette"] == 0))
  assert len({bytes(columns["image"][i]) for i in same}) == len(same)
  # The global factors show: the mean colour tells palettes apart.
  means = columns["image"].reshape(600, -1).mean(axis=1)
  per_palette = [means[columns["palette"] == p].mean()
                 for p in range(len(synthetic.PALETTES))]
  assert np.ptp(per_palette) > 50
