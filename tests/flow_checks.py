"""Checks shared by the flow tests (TFP's own conventions).

Every bijector is checked for
  * a round trip in both directions, with `tf.identity` between the calls
    so TFP's forward/inverse cache cannot hand back the input;
  * `forward_log_det_jacobian(x) == -inverse_log_det_jacobian(y)`;
  * the log-det against `slogdet` of the autodiff Jacobian (float64).
Every Keras layer (tests/flows/test_conformance.py) for
  * a get_config / from_config round trip;
  * one optimizer step changing every trainable variable;
  * equal outputs with and without the inference cache, and `cached=True`
    reaching every layer that holds a cache (and only then);
  * `initializing=True` reaching every ActNorm (flow layers).
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf

from tfglv import _compat
from tfglv.flows import actnorm
from tfglv.flows import conv1x1
from tfglv.layers import weight_norm


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


def walk(layer):
  """`layer` and every layer nested in it."""
  return [layer] + _compat.sublayers(layer)


def cache_holders(layer):
  """The layers under `layer` (itself included) with an inference cache."""
  return [l for l in walk(layer) if hasattr(l, "refresh_cache")]


def check_config_round_trip(layer, build=None):
  """from_config(get_config()) rebuilds the same layer (`build` builds it)."""
  config = layer.get_config()
  clone = type(layer).from_config(config)
  if build is not None:
    build(clone)
  assert clone.get_config() == config
  signature = lambda l: [(v.path, tuple(v.shape), v.dtype, v.trainable)
                         for v in l.weights]
  assert signature(clone) == signature(layer)
  return clone


def check_one_step_trains_every_variable(layer, loss_fn):
  """One Adam step on `loss_fn()` moves every trainable variable."""
  variables = layer.trainable_variables
  before = [v.numpy().copy() for v in variables]
  with tf.GradientTape() as tape:
    loss = loss_fn()
  grads = tape.gradient(loss, variables)
  assert all(g is not None for g in grads), [
      v.path for v, g in zip(variables, grads) if g is None]
  keras.optimizers.Adam(1e-3).apply_gradients(zip(grads, variables))
  unchanged = [v.path for v, b in zip(variables, before)
               if np.array_equal(v.numpy(), b)]
  assert not unchanged, unchanged


@contextlib.contextmanager
def recorded_cache_choices():
  """Yields a list that collects (layer, cached) per cache-holder read.

  Patches the methods that read a cache; build the layers before entering.
  """
  calls = []
  patched = [(weight_norm.WeightNormLayer, "call"),
             (conv1x1.InvertibleConv1x1Layer, "log_abs_det"),
             (conv1x1.InvertibleConv1x1Layer, "inverse_matrix")]
  originals = [getattr(cls, name) for cls, name in patched]

  def spy(original):
    def method(self, *args, cached=False, **kwargs):
      calls.append((self, cached))
      return original(self, *args, cached=cached, **kwargs)
    return method

  for (cls, name), original in zip(patched, originals):
    setattr(cls, name, spy(original))
  try:
    yield calls
  finally:
    for (cls, name), original in zip(patched, originals):
      setattr(cls, name, original)


def check_cached_matches(layer, run, rtol=1e-6):
  """`run(cached)` -> tensors: equal with a refreshed cache, and `cached`
  reaches exactly the layers that hold a cache."""
  holders = cache_holders(layer)
  for holder in holders:
    holder.refresh_cache()
  outputs = {}
  for cached in (False, True):
    with recorded_cache_choices() as calls:
      outputs[cached] = [t.numpy() for t in run(cached)]
    assert {id(l) for l, _ in calls} == {id(l) for l in holders}
    assert {c for _, c in calls} <= {cached}
  for plain, cached in zip(outputs[False], outputs[True]):
    np.testing.assert_allclose(cached, plain, rtol=rtol, atol=1e-12)


def check_initializing_reaches_every_actnorm(layer, x, **condition):
  actnorms = [l for l in walk(layer) if isinstance(l, actnorm.ActNormLayer)]
  assert all(int(a.initialized.numpy()) == 0 for a in actnorms)
  layer.make_bijector(initializing=True).forward_and_log_det(x, **condition)
  assert all(int(a.initialized.numpy()) == 1 for a in actnorms)
  return actnorms
