"""The bits/dim bounds from per-sample nats."""

import math

import numpy as np
import tensorflow as tf

from tfglv import objective


def test_bounds_from_per_sample_terms():
  rng = np.random.default_rng(0)
  nll = rng.uniform(1000.0, 2000.0, (4, 3))  # [k, N] nats
  kl = rng.uniform(0.0, 50.0, (4, 3))
  num_dims, n_bits = 768, 5
  bounds = objective.bits_per_dim_bounds(tf.constant(nll), tf.constant(kl),
                                         num_dims, n_bits)
  to_bpd = 1.0 / (num_dims * math.log(2.0))
  nll_discrete = nll + num_dims * math.log(2**n_bits / 2.0)
  neg_elbo = nll_discrete + kl
  np.testing.assert_allclose(bounds["nll"], nll_discrete.mean(0) * to_bpd)
  np.testing.assert_allclose(bounds["kl"], kl.mean(0) * to_bpd)
  np.testing.assert_allclose(bounds["loss"], neg_elbo.mean(0) * to_bpd)
  np.testing.assert_allclose(bounds["loss"], bounds["nll"] + bounds["kl"])
  shift = neg_elbo.min(0)
  iw = shift - np.log(np.mean(np.exp(-(neg_elbo - shift)), axis=0))
  np.testing.assert_allclose(bounds["iw_loss"], iw * to_bpd)
  # Jensen: the importance-weighted bound is the tighter one.
  assert np.all(bounds["iw_loss"].numpy() <= bounds["loss"].numpy())


def test_one_sample_bounds_coincide():
  nll = tf.constant([[900.0, 1100.0]])
  kl = tf.zeros_like(nll)
  bounds = objective.bits_per_dim_bounds(nll, kl, 100, 8)
  np.testing.assert_allclose(bounds["iw_loss"], bounds["loss"], rtol=1e-6)
  np.testing.assert_array_equal(bounds["kl"], [0.0, 0.0])
