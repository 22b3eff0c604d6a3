"""Prior block, squeezes and the whole multi-scale decoder."""

import numpy as np
import pytest
import tensorflow as tf

import tfglv
from tfglv import flows
import flow_checks


def test_prior_block_factors_out_trailing_channels():
  with flow_checks.dtype_policy("float64"):
    layer = flows.PriorBlockLayer(8, factor=4, hidden_channels=6,
                                  condition_dim=2)
  flow_checks.perturb(layer.trainable_variables, stddev=0.2)
  assert (layer.num_kept, layer.num_leaving) == (6, 2)
  x = tf.random.stateless_normal([2, 2, 2, 8], [1, 1], dtype=tf.float64)
  z = tf.random.stateless_normal([2, 2], [1, 2], dtype=tf.float64)
  flow_checks.check_bijector(layer.bijector, x, event_ndims=3, z=z)


def test_cifar_shapes_and_latent_pieces():
  layer = flows.MultiScaleFlowLayer((32, 32, 3), [1, [1, 1], [1, 1], 1],
                                    [4, 4, 4, 4])
  # 3x32x32 -> 12x16x16 (factor 3+3 out) -> 24x8x8 (6+6 out) -> 48x4x4.
  assert layer.piece_shapes == [(16, 16, 6), (8, 8, 12), (4, 4, 48)]
  v = tf.random.stateless_normal([2, 32, 32, 3], [0, 0])
  pieces = layer.disassemble(v)
  np.testing.assert_array_equal(layer.assemble(pieces).numpy(), v.numpy())
  assert sum(int(np.prod(p.shape[1:])) for p in pieces) == 32 * 32 * 3
  # The pieces are the squeezes' (space_to_depth) channels, kept first.
  squeezed = tf.nn.space_to_depth(v, 2)
  np.testing.assert_array_equal(pieces[0].numpy(), squeezed[..., 6:].numpy())


def _tiny_decoder(model_name="glvae"):
  config = tfglv.configs.get("tiny", model=model_name)
  with flow_checks.dtype_policy("float64"):
    model = tfglv.build_model(config)
  flow_checks.perturb(model.trainable_variables, stddev=0.03)
  return config, model


@pytest.mark.parametrize("model_name", ["glvae", "glvae_prior_only"])
def test_whole_conditional_decoder_of_tiny(model_name):
  config, model = _tiny_decoder(model_name)
  bijector = model.decoder_bijector
  x = tf.random.stateless_uniform([1, *config.model.image_shape], [2, 3],
                                  minval=-1, maxval=1, dtype=tf.float64)
  z = tf.random.stateless_normal([1, config.model.latent_dim], [2, 4],
                                 dtype=tf.float64)
  flow_checks.check_round_trip(bijector, x, atol=1e-9, z=z)
  flow_checks.check_log_det_symmetry(bijector, x, event_ndims=3, atol=1e-7,
                                     z=z)
  flow_checks.check_log_det_against_jacobian(bijector, x, event_ndims=3,
                                             atol=1e-6, z=z)


def test_decoder_output_depends_on_z():
  config, model = _tiny_decoder()
  x = tf.random.stateless_uniform([2, *config.model.image_shape], [0, 3],
                                  minval=-1, maxval=1, dtype=tf.float64)
  z = tf.random.stateless_normal([2, config.model.latent_dim], [0, 4],
                                 dtype=tf.float64)
  bijector = model.decoder_bijector
  v1 = bijector.forward(x, z=z)
  v2 = bijector.forward(tf.identity(x), z=z + 1.0)
  assert np.abs((v1 - v2).numpy()).max() > 1e-3
  # And decoding the same v with another z gives another image.
  x1 = bijector.inverse(tf.identity(v1), z=z)
  x2 = bijector.inverse(tf.identity(v1), z=z[::-1])
  assert np.abs((x1 - x2).numpy()).max() > 1e-3


def test_indivisible_image_size_is_rejected():
  with pytest.raises(ValueError, match="multiples of 4"):
    flows.MultiScaleFlowLayer((18, 18, 3), [1, [1], 1], [4, 4, 4])
