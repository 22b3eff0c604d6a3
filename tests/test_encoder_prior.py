"""Compression encoder and flow prior on z."""

import json

import numpy as np
import pytest
import tensorflow as tf

import tfglv
from tfglv import encoder as encoder_lib
from tfglv import flows
from tfglv import prior as prior_lib
import flow_checks


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


def test_encoder_rejects_sizes_its_levels_cannot_reach_4x4():
  with pytest.raises(ValueError, match="maps 16x16 images to 4x4; got 32x32"):
    encoder_lib.Encoder((32, 32, 3), [8, 8], 4, 6)


def test_encoder_batch_norm_is_synchronised_across_replicas():
  encoder = encoder_lib.Encoder((8, 8, 3), [4], 2, 2)
  bns = [l for l in encoder._flatten_layers() if "bn" in l.name]
  assert bns and all(l.synchronized for l in bns)


def test_prior_flow_bijector_and_density():
  with flow_checks.dtype_policy("float64"):
    layer = prior_lib.PriorFlowLayer(6, num_steps=2, hidden_units=8)
  flow_checks.perturb(layer.trainable_variables, stddev=0.2)
  z = tf.random.stateless_normal([4, 6], [0, 1], dtype=tf.float64)
  flow_checks.check_bijector(layer.bijector, z, event_ndims=1)
  # log p(z) integrates the change of variables: check against TFP.
  distribution = tfp_transformed(layer)
  np.testing.assert_allclose(layer.log_prob(z).numpy(),
                             distribution.log_prob(z).numpy(), rtol=1e-10)
  kinds = [type(l).__name__ for l in layer.steps[0]]
  assert kinds == ["ActNormLayer", "InvertibleConv1x1Layer"] + [
      "CouplingLayer"] * 2 + ["ActNormLayer"] + ["CouplingLayer"] * 2


def tfp_transformed(layer):
  import tensorflow_probability as tfp
  return tfp.distributions.TransformedDistribution(
      tfp.distributions.MultivariateNormalDiag(
          tf.zeros([layer.latent_dim], tf.float64)),
      tfp.bijectors.Invert(layer.bijector))


def test_prior_sampling_is_seeded():
  layer = prior_lib.PriorFlowLayer(4, num_steps=1, hidden_units=8)
  a = layer.sample(3, seed=[1, 2])
  b = layer.sample(3, seed=[1, 2])
  c = layer.sample(3, seed=[1, 3])
  np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert not np.array_equal(a.numpy(), c.numpy())


def _all_layer_classes():
  return [
      (flows.ActNormLayer, dict(num_channels=3)),
      (flows.InvertibleConv1x1Layer, dict(num_channels=3,
                                          parameterization="lu")),
      (flows.CouplingLayer, dict(num_channels=4, hidden_channels=5,
                                 split="alternate", order="down",
                                 condition_dim=2, alpha=0.5)),
      (flows.GlowStepLayer, dict(num_channels=4, hidden_channels=5,
                                 condition_dim=2)),
      (flows.PriorBlockLayer, dict(num_channels=8, factor=4,
                                   hidden_channels=5)),
      (flows.MultiScaleFlowLayer, dict(image_shape=(8, 8, 3),
                                       num_steps=[1, [1], 1],
                                       hidden_channels=[4, 4, 4],
                                       condition_dim=2)),
      (prior_lib.PriorFlowLayer, dict(latent_dim=4, num_steps=1,
                                      hidden_units=6)),
      (encoder_lib.Encoder, dict(image_shape=(8, 8, 3), channels=[4],
                                 out_channels=2, latent_dim=2)),
  ]


@pytest.mark.parametrize("cls,kwargs", _all_layer_classes(),
                         ids=lambda v: getattr(v, "__name__", ""))
def test_every_layer_round_trips_its_config(cls, kwargs):
  layer = cls(**kwargs)
  config = layer.get_config()
  as_json = lambda v: json.loads(json.dumps(v))  # tuples == lists
  for key, value in kwargs.items():
    assert as_json(config[key]) == as_json(value), key
  clone = cls.from_config(config)
  assert clone.count_params() == layer.count_params()
  assert [v.shape for v in clone.weights] == [v.shape for v in layer.weights]


def test_model_round_trips_its_config():
  model = tfglv.build_model(tfglv.configs.get("tiny", model="glvae_prior_only"))
  clone = tfglv.GLVAE.from_config(model.get_config())
  assert clone.config == model.config
  assert clone.count_params() == model.count_params()
