"""The codes' types, seeds, noise draws, checks and interpolation."""

import numpy as np
import pytest
import tensorflow as tf

from tfglv import latents

IMAGE_SHAPE = (4, 4, 3)


def test_as_seed():
  np.testing.assert_array_equal(latents.as_seed(5), [5, 0])
  np.testing.assert_array_equal(latents.as_seed(2**31 + 1), [2, 0])
  seed = latents.as_seed(np.array([3, 4], np.int64))
  assert seed.dtype == tf.int32
  np.testing.assert_array_equal(seed, [3, 4])
  with pytest.raises(ValueError, match=r"int tensor of shape \[2\]"):
    latents.as_seed([1, 2, 3])


def test_draw_noise_is_stateless_and_traces_with_a_tensor_count():
  z_noise, v_noise = latents.draw_noise([1, 2], 3, 6, IMAGE_SHAPE)
  assert z_noise.shape == (3, 6) and v_noise.shape == (3, *IMAGE_SHAPE)
  again = latents.draw_noise([1, 2], 3, 6, IMAGE_SHAPE)
  np.testing.assert_array_equal(again[0], z_noise)
  np.testing.assert_array_equal(again[1], v_noise)
  other_z, _ = latents.draw_noise([1, 3], 3, 6, IMAGE_SHAPE)
  assert not np.array_equal(other_z, z_noise)

  @tf.function(input_signature=[tf.TensorSpec([2], tf.int32),
                                tf.TensorSpec([], tf.int32)])
  def traced(seed, num_samples):
    return latents.draw_noise(seed, num_samples, 6, IMAGE_SHAPE)

  traced_z, traced_v = traced(tf.constant([1, 2]), tf.constant(3))
  np.testing.assert_array_equal(traced_z, z_noise)
  np.testing.assert_array_equal(traced_v, v_noise)
  # "glow" has no global code: zero-width z noise.
  assert latents.draw_noise(0, 2, 0, IMAGE_SHAPE)[0].shape == (2, 0)


def test_interpolate_is_the_paper_formula_on_a_grid():
  rng = np.random.default_rng(0)
  start = latents.Encoding(*(tf.constant(rng.normal(size=shape), tf.float32)
                             for shape in ((2, 6), (2, 6), (2, *IMAGE_SHAPE))))
  end = latents.Encoding(*(tf.constant(rng.normal(size=shape), tf.float32)
                           for shape in ((2, 6), (2, 6), (2, *IMAGE_SHAPE))))
  a = np.array([0.0, 0.25, 1.0], np.float32)
  b = np.array([0.0, 0.1, 0.7, 1.0], np.float32)
  z, v = latents.interpolate(start, end, a, b)
  assert z.shape == (2, 3, 4, 6) and v.shape == (2, 3, 4, *IMAGE_SHAPE)
  z_start, z_end = start.z.numpy(), end.z.numpy()
  v_start, v_end = start.v.numpy(), end.v.numpy()
  for n in range(2):
    for i in range(3):
      for j in range(4):
        np.testing.assert_array_equal(
            z[n, i, j], (1 - a[i]) * z_start[n] + a[i] * z_end[n])
        np.testing.assert_array_equal(
            v[n, i, j], (1 - b[j]) * v_start[n] + b[j] * v_end[n])


def test_checks_name_the_expected_values():
  with pytest.raises(ValueError, match=r"temperature must be in \(0, 10\]"):
    latents.check_temperature(0.0)
  with pytest.raises(ValueError, match=r"temperature must be in \(0, 10\]"):
    latents.check_temperature(float("inf"))
  latents.check_temperature(tf.constant(0.0))  # Tensors are checked in-graph.
  with pytest.raises(ValueError, match="num_samples must be >= 1; got 0"):
    latents.check_num_samples(0)
  latents.check_num_samples(tf.constant(0))
  z, v = tf.zeros([1, 6]), tf.zeros([1, *IMAGE_SHAPE])
  with pytest.raises(ValueError, match=r"v must be float32 \[N, 4, 4, 3\]"):
    latents.check_latents(z, tf.zeros([1, 4, 4, 1]), IMAGE_SHAPE, 6)
  with pytest.raises(ValueError, match=r"z must be float32 \[N, 6\]"):
    latents.check_latents(tf.zeros([1, 5]), v, IMAGE_SHAPE, 6)
  with pytest.raises(ValueError, match="at least one latent"):
    latents.check_latents(z[:0], v[:0], IMAGE_SHAPE, 6)
  with pytest.raises(ValueError, match="v must be finite"):
    latents.check_latents(z, v + np.nan, IMAGE_SHAPE, 6)
  checked_z, checked_v = latents.check_latents(np.zeros((1, 6)), v,
                                               IMAGE_SHAPE, 6)
  assert checked_z.dtype == tf.float32 and checked_v.dtype == tf.float32
