"""Squeeze: channel order [2, 2, C] and bijector checks."""

import numpy as np
import tensorflow as tf

from tfglv import flows
import flow_checks


def test_channel_order_is_spatial_offset_then_channel():
  x = np.random.RandomState(0).normal(size=(1, 4, 6, 3))
  y = flows.Squeeze().forward(tf.constant(x)).numpy()
  assert y.shape == (1, 2, 3, 12)
  for i in range(2):
    for j in range(3):
      for dy in range(2):
        for dx in range(2):
          for c in range(3):
            assert y[0, i, j, (2 * dy + dx) * 3 + c] == x[0, 2 * i + dy,
                                                          2 * j + dx, c]


def test_squeeze_bijector_and_shapes():
  squeeze = flows.Squeeze()
  x = tf.random.stateless_normal([2, 4, 4, 2], [0, 1], dtype=tf.float64)
  flow_checks.check_round_trip(squeeze, x)
  flow_checks.check_log_det_symmetry(squeeze, x, event_ndims=3)
  flow_checks.check_log_det_against_jacobian(squeeze, x, event_ndims=3)
  assert squeeze.forward_event_shape([4, 4, 2]) == [2, 2, 8]
  assert squeeze.inverse_event_shape([2, 2, 8]) == [4, 4, 2]
