"""Numerical checks shared by the flow tests (TFP's own conventions).

Every bijector is checked for
  * a round trip in both directions, with `tf.identity` between the calls
    so TFP's forward/inverse cache cannot hand back the input;
  * `forward_log_det_jacobian(x) == -inverse_log_det_jacobian(y)`;
  * the log-det against `slogdet` of the autodiff Jacobian (float64).
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf


@contextlib.contextmanager
def dtype_policy(name):
  """Builds Keras layers under a global dtype policy, then restores it."""
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(name)
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)


def perturb(variables, stddev=0.05, seed=0, per_fan_in=False):
  """Moves every trainable variable off its (often identity) init.

  With `per_fan_in`, a kernel's noise is divided by sqrt(fan-in), so deep,
  wide models (the full CIFAR-10 decoder) stay well-conditioned.
  """
  rng = np.random.RandomState(seed)
  for variable in variables:
    scale = stddev
    if per_fan_in and len(variable.shape) >= 2:
      scale = stddev / np.sqrt(np.prod(variable.shape[:-1]))
    noise = rng.normal(0.0, scale, variable.shape)
    variable.assign(variable.numpy() + noise.astype(variable.dtype))


def check_round_trip(bijector, x, atol=1e-10, **condition):
  y = bijector.forward(x, **condition)
  x_back = bijector.inverse(tf.identity(y), **condition)
  np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=atol)
  # The other direction, starting from a fresh latent.
  y_fresh = tf.identity(y) + 0.0
  y_again = bijector.forward(tf.identity(bijector.inverse(y_fresh, **condition)),
                             **condition)
  np.testing.assert_allclose(y_again.numpy(), y_fresh.numpy(), atol=atol)
  # The round trip must not be the identity map itself.
  assert y.shape != x.shape or np.max(np.abs(y.numpy() - x.numpy())) > 1e-6
  return y


def check_log_det_symmetry(bijector, x, event_ndims, atol=1e-8, **condition):
  y = bijector.forward(x, **condition)
  fldj = bijector.forward_log_det_jacobian(x, event_ndims=event_ndims,
                                           **condition)
  ildj = bijector.inverse_log_det_jacobian(tf.identity(y),
                                           event_ndims=event_ndims,
                                           **condition)
  np.testing.assert_allclose(fldj.numpy(), -ildj.numpy(), atol=atol)
  return fldj


def check_log_det_against_jacobian(bijector, x, event_ndims, atol=1e-7,
                                   **condition):
  """log|det J| from autodiff (float64) == forward_log_det_jacobian."""
  assert x.dtype == tf.float64, "use float64 for the Jacobian check"
  batch = x.shape[0]
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = bijector.forward(x, **condition)
  jacobian = tape.batch_jacobian(y, x)
  in_size = int(np.prod(x.shape[1:]))
  out_size = int(np.prod(y.shape[1:]))
  assert in_size == out_size
  jacobian = tf.reshape(jacobian, [batch, out_size, in_size])
  _, log_abs_det = tf.linalg.slogdet(jacobian)
  fldj = bijector.forward_log_det_jacobian(tf.identity(x),
                                           event_ndims=event_ndims,
                                           **condition)
  fldj = tf.broadcast_to(fldj, [batch])
  np.testing.assert_allclose(fldj.numpy(), log_abs_det.numpy(), atol=atol,
                             rtol=1e-7)
  return log_abs_det


def check_bijector(bijector, x, event_ndims, **condition):
  check_round_trip(bijector, x, **condition)
  check_log_det_symmetry(bijector, x, event_ndims, **condition)
  check_log_det_against_jacobian(bijector, x, event_ndims, **condition)
