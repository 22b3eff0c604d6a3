"""Invertible 1x1 convolution: both parameterisations, the export cache."""

import numpy as np
import pytest
import tensorflow as tf

from tfglv import flows
import flow_checks


@pytest.mark.parametrize("parameterization", ["full", "lu"])
@pytest.mark.parametrize("event_rank,shape", [(3, (2, 2, 3, 4)), (1, (3, 6))])
def test_conv1x1_bijector(parameterization, event_rank, shape):
  with flow_checks.dtype_policy("float64"):
    layer = flows.InvertibleConv1x1Layer(
        shape[-1], event_rank=event_rank, parameterization=parameterization)
  flow_checks.perturb(layer.trainable_variables, stddev=0.1)
  x = tf.random.stateless_normal(shape, [3, 4], dtype=tf.float64)
  flow_checks.check_bijector(layer.bijector, x, event_ndims=event_rank)


def test_full_kernel_starts_orthogonal():
  layer = flows.InvertibleConv1x1Layer(8)
  w = layer.kernel.numpy()
  np.testing.assert_allclose(w @ w.T, np.eye(8), atol=1e-5)


def test_lu_weight_matches_its_factors_at_init():
  layer = flows.InvertibleConv1x1Layer(6, parameterization="lu")
  w = layer.weight_matrix(tf.float64).numpy()
  np.testing.assert_allclose(w @ w.T, np.eye(6), atol=1e-6)
  _, log_abs = np.linalg.slogdet(w)
  np.testing.assert_allclose(layer.log_abs_det(tf.float64).numpy(), log_abs,
                             atol=1e-6)


def test_cached_inverse_matches_and_needs_no_inversion():
  layer = flows.InvertibleConv1x1Layer(5)
  flow_checks.perturb(layer.trainable_variables, stddev=0.2)
  y = tf.random.stateless_normal([2, 3, 3, 5], [0, 7])
  x_direct, ldj_direct = layer.bijector.inverse_and_log_det(y)
  layer.refresh_cache()
  cached = layer.make_bijector(cached=True)
  x_cached, ldj_cached = cached.inverse_and_log_det(tf.identity(y))

  def op_types(bijector):
    graph = tf.function(bijector.inverse_and_log_det).get_concrete_function(
        tf.TensorSpec([1, 3, 3, 5], tf.float32)).graph
    return {op.type for op in graph.get_operations()}

  # The cached graph must contain neither a matrix inverse nor a slogdet;
  # the plain bijector still computes both.
  heavy = {"MatrixInverse", "LogMatrixDeterminant"}
  assert not op_types(cached) & heavy
  assert op_types(layer.bijector) >= heavy
  np.testing.assert_allclose(x_cached.numpy(), x_direct.numpy(), atol=1e-5)
  np.testing.assert_allclose(ldj_cached.numpy(), ldj_direct.numpy(),
                             atol=1e-4)


def test_unknown_parameterization():
  with pytest.raises(ValueError, match="allowed: full, lu"):
    flows.InvertibleConv1x1Layer(4, parameterization="qr")
