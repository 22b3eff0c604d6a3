"""Compression encoder q(z|x)."""

import numpy as np
import pytest
import tensorflow as tf

from tfglv import _compat
from tfglv import encoder as encoder_lib


def test_encoder_shapes_and_near_zero_start():
  encoder = encoder_lib.Encoder((16, 16, 3), [8, 8], out_channels=4,
                                latent_dim=6)
  x = tf.random.stateless_uniform([5, 16, 16, 3], [0, 1], -1, 1)
  mean, log_variance = encoder(x, training=False)
  assert mean.shape == (5, 6) and log_variance.shape == (5, 6)
  # Before the data-dependent init q(z|x) is exactly N(0, I) ...
  assert not np.abs(mean.numpy()).any() and not np.abs(log_variance).any()
  # ... after it, close to N(0, I) but depending on x: std 0.01 per unit.
  encoder.initialize_head(x)
  mean, log_variance = encoder(x, training=False)
  assert 0 < np.abs(mean.numpy()).max() < 0.1
  assert 0 < np.abs(log_variance.numpy()).max() < 0.1
  np.testing.assert_allclose(np.std(mean.numpy(), axis=0, ddof=1), 0.01,
                             rtol=1e-3)


def test_cached_head_reads_the_stored_kernel():
  encoder = encoder_lib.Encoder((8, 8, 3), [4], 2, 2)
  x = tf.random.stateless_uniform([4, 8, 8, 3], [0, 2], -1, 1)
  encoder.initialize_head(x)
  live = [t.numpy() for t in encoder(x)]
  encoder.head.refresh_cache()
  for a, b in zip(encoder(x, cached=True), live):
    np.testing.assert_array_equal(a.numpy(), b)
  encoder.head.length.assign(2.0 * encoder.head.length)  # not refreshed
  for a, b in zip(encoder(x, cached=True), live):
    np.testing.assert_array_equal(a.numpy(), b)
  assert not np.array_equal(encoder(x)[0].numpy(), live[0])


def test_encoder_final_map_and_sizes_its_levels_cannot_halve():
  # The paper's sizes end at 4x4; others at their own side (28 -> 7).
  assert encoder_lib.Encoder((32, 32, 3), [8, 8, 8], 4, 6).final_side == 4
  assert encoder_lib.Encoder((32, 32, 3), [8, 8], 4, 6).final_side == 8
  encoder = encoder_lib.Encoder((28, 28, 1), [8, 8], 4, 6)
  assert encoder.final_side == 7
  assert encoder.head.direction.shape == (7 * 7 * 4, 2 * 6)
  mean, _ = encoder(tf.zeros([2, 28, 28, 1]))
  assert mean.shape == (2, 6)
  with pytest.raises(ValueError, match=r"28x28 does not halve to a map of "
                     r"at least 2x2 that often: use 1 or 2 levels"):
    encoder_lib.Encoder((28, 28, 1), [8, 8, 8], 4, 6)


def test_encoder_batch_norm_is_synchronised_across_replicas():
  encoder = encoder_lib.Encoder((8, 8, 3), [4], 2, 2)
  bns = [l for l in _compat.sublayers(encoder) if "bn" in l.name]
  assert bns and all(l.synchronized for l in bns)


def test_encoder_round_trips_its_config():
  kwargs = dict(image_shape=(8, 8, 3), channels=[4], out_channels=2,
                latent_dim=2)
  encoder = encoder_lib.Encoder(**kwargs)
  config = encoder.get_config()
  assert {k: config[k] for k in kwargs} == dict(kwargs, image_shape=(8, 8, 3))
  clone = encoder_lib.Encoder.from_config(config)
  assert clone.count_params() == encoder.count_params()
  assert [v.shape for v in clone.weights] == [v.shape for v in encoder.weights]
