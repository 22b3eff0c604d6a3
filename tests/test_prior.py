"""Flow prior p(z) on the global code."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfglv import flows
from tfglv import prior as prior_lib
import flow_checks


def test_prior_flow_bijector_and_density():
  with flow_checks.dtype_policy("float64"):
    layer = prior_lib.PriorFlowLayer(6, num_steps=2, hidden_units=8)
  flow_checks.perturb(layer.trainable_variables, stddev=0.2)
  z = tf.random.stateless_normal([4, 6], [0, 1], dtype=tf.float64)
  flow_checks.check_bijector(layer.bijector, z, event_ndims=1)
  # log p(z) integrates the change of variables: check against TFP.
  distribution = tfp.distributions.TransformedDistribution(
      tfp.distributions.MultivariateNormalDiag(
          tf.zeros([layer.latent_dim], tf.float64)),
      tfp.bijectors.Invert(layer.bijector))
  np.testing.assert_allclose(layer.log_prob(z).numpy(),
                             distribution.log_prob(z).numpy(), rtol=1e-10)


def test_prior_steps_are_vector_glow_steps_under_flat_names():
  layer = prior_lib.PriorFlowLayer(4, num_steps=2, hidden_units=6,
                                   alpha=0.5)
  assert all(type(s) is flows.GlowStepLayer and s.event_rank == 1
             for s in layer.steps)
  for k, step in enumerate(layer.steps):
    assert step.alpha == 0.5 and step.hidden_channels == 6
    for piece in step.pieces:
      # The checkpoint reaches each piece as a flat attribute of the prior.
      assert piece.name.startswith(f"step{k}_")
      assert getattr(layer, piece.name) is piece
  # One flat chain of the 7 pieces per step.
  assert len(layer.bijector.bijectors) == 14


def test_prior_sampling_is_seeded():
  layer = prior_lib.PriorFlowLayer(4, num_steps=1, hidden_units=8)
  a = layer.sample(3, seed=[1, 2])
  b = layer.sample(3, seed=[1, 2])
  c = layer.sample(3, seed=[1, 3])
  np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert not np.array_equal(a.numpy(), c.numpy())


def test_cached_prior_matches_and_initializing_reaches_every_actnorm():
  layer = prior_lib.PriorFlowLayer(4, num_steps=2, hidden_units=8)
  z = tf.random.stateless_normal([16, 4], [2, 1]) * 2.0 + 1.0
  layer.log_prob(z, initializing=True)
  actnorms = [p for s in layer.steps for p in s.pieces
              if isinstance(p, flows.ActNormLayer)]
  assert len(actnorms) == 4
  assert all(int(a.initialized.numpy()) == 1 for a in actnorms)
  flow_checks.perturb(layer.trainable_variables, stddev=0.1)
  for step in layer.steps:
    step.conv1x1.refresh_cache()
    for piece in step.pieces:
      if isinstance(piece, flows.CouplingLayer):
        piece.network.dense_out.refresh_cache()
  np.testing.assert_allclose(layer.log_prob(z, cached=True).numpy(),
                             layer.log_prob(z).numpy(), rtol=1e-6)
  np.testing.assert_allclose(
      layer.sample(3, [0, 1], cached=True).numpy(),
      layer.sample(3, [0, 1]).numpy(), rtol=1e-5, atol=1e-6)
