"""uint8 images <-> the flow's range [-1, 1): bins, dequantisation, back."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfglv import quantization


@pytest.mark.parametrize("n_bits", [8, 5, 1])
def test_every_grey_level_round_trips_on_its_grid(n_bits):
  levels = tf.constant(np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1))
  x_bins = quantization.bins(levels, n_bits)
  assert x_bins.dtype == tf.float32
  assert x_bins.numpy().min() == 0 and x_bins.numpy().max() == 2**n_bits - 1
  centres = quantization.to_flow_range(x_bins, 0.5, n_bits)
  low = quantization.to_flow_range(x_bins, 0.0, n_bits)
  high = quantization.to_flow_range(x_bins, 0.999, n_bits)
  assert np.all(low.numpy() >= -1.0) and np.all(high.numpy() < 1.0)
  shift = 8 - n_bits
  on_grid = (levels.numpy() >> shift) << shift
  # Anywhere inside its bin, x decodes to the bin's lowest grey level.
  for x in (centres, low, high):
    np.testing.assert_array_equal(quantization.to_images(x, n_bits), on_grid)


def test_to_images_clips_outside_the_range():
  images = quantization.to_images(tf.constant([-3.0, 1.0, 7.0]), 8)
  np.testing.assert_array_equal(images, [0, 255, 255])


def test_dequantization_log_det():
  assert quantization.dequantization_log_det(3072, 8) == pytest.approx(
      3072 * math.log(128.0))
  assert quantization.dequantization_log_det(10, 1) == 0.0


@pytest.mark.parametrize("bad,message", [
    (np.zeros((2, 16, 16, 3), np.float32), "must be uint8"),
    (np.zeros((16, 16, 3), np.uint8), "rank 4"),
    (np.zeros((2, 32, 32, 3), np.uint8),
     r"shape \[N, 16, 16, 3\] for this model "
     r"\(model.image_size 16, model.channels 3\)"),
    (np.zeros((0, 16, 16, 3), np.uint8), "at least one image"),
])
def test_check_images_names_the_expected_shape(bad, message):
  with pytest.raises(ValueError, match=message):
    quantization.check_images(bad, (16, 16, 3))
