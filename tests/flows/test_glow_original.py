"""The original Glow ("glow_original"): Glow's own maths, the flow checks
the conformance registry does not make, and its configs.

The parameter count at the `cifar10` config is in tests/test_model.py
(`test_cifar10_glow_original_parameter_count_is_glows`), beside the other
variants' counts.
"""

import math
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import flow_checks
import tfglv
from tfglv import prior as prior_lib
from tfglv.flows import edge_conv
from tfglv.flows import glow_coupling
from tfglv.flows import glow_original


def _float64_layer(cls, stddev=0.1, **kwargs):
  with flow_checks.dtype_policy("float64"):
    layer = cls(**kwargs)
  flow_checks.perturb(layer.trainable_variables, stddev=stddev)
  return layer


def test_edge_conv_is_glows_convolution_of_the_padded_input_and_ring():
  x = tf.random.stateless_normal([2, 3, 5, 4], [0, 1])
  kernel = tf.random.stateless_normal([3, 3, 5, 6], [0, 2])
  # Glow's add_edge_padding: zero padding, then a channel that is 1 on the
  # padding and 0 inside; then a VALID convolution.
  ring = np.ones([2, 5, 7, 1], np.float32)
  ring[:, 1:-1, 1:-1] = 0.0
  padded = tf.concat([tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), ring], -1)
  expected = tf.nn.conv2d(padded, kernel, strides=1, padding="VALID")
  np.testing.assert_allclose(edge_conv.edge_conv2d(x, kernel).numpy(),
                             expected.numpy(), atol=1e-5)
  # No input channels: the ring's term alone, one map for every image.
  border = edge_conv.edge_conv2d(tf.zeros([2, 3, 5, 0]), kernel[:, :, 4:])
  np.testing.assert_allclose(border.numpy(), expected[:1].numpy() -
                             tf.nn.conv2d(x[:1], kernel[:, :, :4], 1,
                                          "SAME").numpy(), atol=1e-5)


def test_coupling_starts_at_glows_scale_sigmoid_of_two():
  layer = glow_coupling.GlowCouplingLayer(4, hidden_channels=8)
  x = tf.random.stateless_normal([2, 3, 3, 4], [1, 1])
  y, log_det = layer.bijector.forward_and_log_det(x)
  scale = 1.0 / (1.0 + math.exp(-2.0))  # sigmoid(0 + 2)
  np.testing.assert_array_equal(y[..., :2].numpy(), x[..., :2].numpy())
  np.testing.assert_allclose(y[..., 2:].numpy(), scale * x[..., 2:].numpy(),
                             rtol=1e-6)
  np.testing.assert_allclose(log_det.numpy(), 3 * 3 * 2 * math.log(scale),
                             rtol=1e-6)


@pytest.mark.parametrize("num_conditioning", [2, 0])
def test_gaussian_prior_scores_like_glows_learned_gaussian(num_conditioning):
  layer = _float64_layer(glow_original.GaussianPriorLayer, stddev=0.3,
                         num_channels=4, num_conditioning=num_conditioning)
  x = tf.random.stateless_normal([3, 2, 3, 4], [2, 1], dtype=tf.float64)
  conditioning, scored = x[..., :num_conditioning], x[..., num_conditioning:]
  params = layer.conv(conditioning)
  mean, log_std = params[..., :4 - num_conditioning], params[
      ..., 4 - num_conditioning:]
  # Glow: log N(scored; mean, exp(log_std)), every scored value.
  glows = tf.reduce_sum(tfp.distributions.Normal(
      mean, tf.exp(log_std)).log_prob(scored), axis=[1, 2, 3])
  y, log_det = layer.bijector.forward_and_log_det(x)
  ours = prior_lib.standard_normal_log_prob(y[..., num_conditioning:]) + log_det
  np.testing.assert_allclose(ours.numpy(), glows.numpy(), rtol=1e-12)
  np.testing.assert_array_equal(y[..., :num_conditioning].numpy(),
                                conditioning.numpy())


def _tiny_decoder(channels=3, image_size=16):
  """The tiny config's decoder, initialised on data, moved off its init."""
  config = tfglv.configs.get("tiny", model="glow_original", channels=channels,
                             image_size=image_size)
  model = tfglv.build_model(config)
  images = tf.constant(np.random.RandomState(0).randint(
      0, 256, (8, image_size, image_size, channels)), tf.uint8)
  model.initialize(images)
  flow_checks.perturb(model.trainable_variables, stddev=0.05)
  return model, model._to_flow_range(model._bins(images), 0.5)


def test_float32_round_trip_and_latent_pieces():
  model, x = _tiny_decoder()
  decoder = model.decoder
  bijector = decoder.bijector
  v, log_det = bijector.forward_and_log_det(x)
  assert np.abs(v.numpy() - x.numpy()).max() > 0.5  # far from the identity
  x_back, inverse_log_det = bijector.inverse_and_log_det(tf.identity(v))
  assert np.abs(x_back.numpy() - x.numpy()).max() <= 1e-5
  np.testing.assert_allclose(inverse_log_det.numpy(), -log_det.numpy(),
                             rtol=1e-5)
  # tiny: 16x16x3 -> 8x8x12, half split off -> 4x4x24 at the top.
  assert decoder.piece_shapes == [(8, 8, 6), (4, 4, 24)]
  pieces = decoder.disassemble(v)
  assert [tuple(p.shape[1:]) for p in pieces] == decoder.piece_shapes
  np.testing.assert_array_equal(decoder.assemble(pieces).numpy(), v.numpy())


def test_log_det_against_finite_differences():
  layer = _float64_layer(glow_original.OriginalGlowLayer, image_shape=(4, 4, 1),
                         num_levels=2, num_steps=1, hidden_channels=3)
  x = tf.random.stateless_normal([1, 4, 4, 1], [3, 1], dtype=tf.float64)
  bijector = layer.bijector
  _, log_det = bijector.forward_and_log_det(x)
  flat = x.numpy().reshape(-1)
  step = 1e-6
  columns = []
  for i in range(flat.size):
    delta = np.zeros_like(flat)
    delta[i] = step
    plus = bijector.forward_and_log_det(tf.constant(
        (flat + delta).reshape(x.shape)))[0].numpy().reshape(-1)
    minus = bijector.forward_and_log_det(tf.constant(
        (flat - delta).reshape(x.shape)))[0].numpy().reshape(-1)
    columns.append((plus - minus) / (2 * step))
  _, numerical = np.linalg.slogdet(np.stack(columns, axis=1))
  np.testing.assert_allclose(log_det.numpy()[0], numerical, atol=1e-6)
  assert abs(numerical) > 0.1  # a log-det worth checking


@pytest.mark.parametrize("channels,image_size", [(1, 28), (5, 16)])
def test_grayscale_28x28_and_odd_channels_round_trip(channels, image_size):
  model, _ = _tiny_decoder(channels, image_size)
  images = tf.constant(np.random.RandomState(1).randint(
      0, 256, (4, image_size, image_size, channels)), tf.uint8)
  z, _, v = model.encode(images)
  assert z.shape == (4, 0) and v.shape == images.shape
  np.testing.assert_array_equal(model.decode(z, tf.identity(v)).numpy(),
                                images.numpy())


@pytest.mark.parametrize("overrides,message", [
    (dict(image_size=20), "image_size 20 cannot be divided by the 3-level "
     "Glow (model.glow_original.num_levels): every level halves the image, "
     "so it needs a multiple of 8. Either use 2 levels (--set "
     "model.glow_original.num_levels=2), or resize"),
    (dict(model__glow_original__num_levels=0),
     "model.glow_original.num_levels must be >= 1; got 0"),
    (dict(model__glow_original__num_steps=0),
     "model.glow_original.num_steps must be >= 1; got 0"),
    (dict(model__glow_original__num_levels=4,
          model__glow_original__num_steps=300),
     "model.glow_original has 4 levels of 300 steps, 1200 Glow steps in "
     "all; at most 1024 are allowed"),
])
def test_bad_glow_original_configs_name_the_problem(overrides, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    tfglv.configs.get("cifar10", variant="glow_original", **overrides)


def test_other_variants_ignore_the_glow_original_fields():
  # image_size 20 fits the tiny refined flow (4 | 20), not a 3-level Glow.
  config = tfglv.configs.get("tiny", variant="glow", image_size=20,
                             model__glow_original__num_levels=3)
  assert config.model.glow_original.num_levels == 3
