"""ActNorm: bijector checks, data-dependent init, saved `initialized` flag."""

import numpy as np
import pytest
import tensorflow as tf

from tfglv import flows
import flow_checks


@pytest.mark.parametrize("event_rank,shape", [(3, (2, 3, 3, 4)), (1, (3, 5))])
def test_actnorm_bijector(event_rank, shape):
  with flow_checks.dtype_policy("float64"):
    layer = flows.ActNormLayer(shape[-1], event_rank=event_rank)
  flow_checks.perturb(layer.trainable_variables, stddev=0.3)
  x = tf.random.stateless_normal(shape, [1, 2], dtype=tf.float64)
  flow_checks.check_bijector(layer.bijector, x, event_ndims=event_rank)


def test_data_dependent_init_normalises_and_is_saved(tmp_path):
  layer = flows.ActNormLayer(3)
  x = tf.random.stateless_normal([16, 4, 4, 3], [0, 1]) * [1.0, 5.0, 0.1] + [
      3.0, -2.0, 0.5]
  assert int(layer.initialized.numpy()) == 0
  y, _ = layer.make_bijector(initializing=True).forward_and_log_det(x)
  mean, variance = tf.nn.moments(y, axes=[0, 1, 2])
  np.testing.assert_allclose(mean.numpy(), 0.0, atol=1e-4)
  np.testing.assert_allclose(variance.numpy(), 1.0, atol=1e-3)
  assert int(layer.initialized.numpy()) == 1

  path = tf.train.Checkpoint(layer=layer).save(str(tmp_path / "ckpt"))
  restored = flows.ActNormLayer(3)
  tf.train.Checkpoint(layer=restored).restore(path).assert_consumed()
  assert int(restored.initialized.numpy()) == 1
  np.testing.assert_array_equal(restored.log_scale.numpy(),
                                layer.log_scale.numpy())


def test_only_the_initializing_bijector_initialises():
  layer = flows.ActNormLayer(2, event_rank=1)
  x = tf.random.stateless_normal([8, 2], [0, 2]) * 3.0 + 1.0
  y, _ = layer.bijector.forward_and_log_det(x)
  np.testing.assert_array_equal(y.numpy(), x.numpy())  # identity at init
  assert int(layer.initialized.numpy()) == 0
  # The inverse never initialises, even of an initialising bijector.
  layer.make_bijector(initializing=True).inverse_and_log_det(x)
  assert int(layer.initialized.numpy()) == 0


def test_actnorm_rejects_bad_arguments():
  with pytest.raises(ValueError, match="num_channels"):
    flows.ActNormLayer(0)
  with pytest.raises(ValueError, match="event_rank must be 1"):
    flows.ActNormLayer(3, event_rank=2)
