"""Invertible 1x1 convolution (Kingma & Dhariwal, 2018).

A learned C x C matrix W mixes channels at every position:

    y[..., j] = sum_i x[..., i] W[i, j],    log|det dy/dx| = P * log|det W|

with P positions (H*W for images; 1 for vectors, where it is the prior's
invertible linear layer). Two parameterisations:

* `"full"`: W itself, orthogonal at init (the authors' choice).
* `"lu"`: W = P L (U + diag(sign * exp(log_s))) with a fixed permutation P,
  unit-lower L and strictly-upper U, so log|det W| = sum(log_s) needs no
  decomposition.

Decoding needs W^-1. The layer keeps non-trainable `inverse_kernel` and
`cached_log_abs_det` variables refreshed by `refresh_cache()`; the bijector of
`make_bijector(cached=True)` reads them instead of inverting or taking a
determinant. That is how exports and repeated sampling avoid matrix
inversion and slogdet (TF Lite has no builtin for either).
"""

import keras
import numpy as np
import tensorflow as tf

from tfglv.flows import base

PARAMETERIZATIONS = ("full", "lu")


@keras.saving.register_keras_serializable(package="tfglv")
class InvertibleConv1x1Layer(base.FlowLayer):
  """Owns the 1x1 convolution's weights."""

  def __init__(self, num_channels: int, event_rank: int = 3,
               parameterization: str = "full", seed=None, **kwargs):
    super().__init__(**kwargs)
    if parameterization not in PARAMETERIZATIONS:
      raise ValueError(f"Unknown parameterization {parameterization!r}; "
                       f"allowed: {', '.join(PARAMETERIZATIONS)}.")
    if num_channels < 1:
      raise ValueError(f"num_channels must be >= 1; got {num_channels}.")
    base.check_event_rank(event_rank)
    self.keep_arguments(num_channels=num_channels, event_rank=event_rank,
                        parameterization=parameterization, seed=seed)
    c = num_channels
    orthogonal = keras.initializers.Orthogonal(seed=seed)
    if parameterization == "full":
      self.kernel = self.add_weight(shape=(c, c), initializer=orthogonal,
                                    name="kernel")
    else:
      w = keras.ops.convert_to_numpy(orthogonal((c, c), dtype="float64"))
      perm, lower, upper = _lu_decompose(w)
      diag = np.diag(upper)
      self.permutation = self.add_weight(
          shape=(c, c), initializer=keras.initializers.Constant(perm),
          trainable=False, name="permutation")
      self.lower = self.add_weight(
          shape=(c, c), initializer=keras.initializers.Constant(lower),
          name="lower")
      self.upper = self.add_weight(
          shape=(c, c), initializer=keras.initializers.Constant(
              np.triu(upper, 1)), name="upper")
      self.log_s = self.add_weight(
          shape=(c,), initializer=keras.initializers.Constant(
              np.log(np.abs(diag))), name="log_s")
      self.sign_s = self.add_weight(
          shape=(c,), initializer=keras.initializers.Constant(np.sign(diag)),
          trainable=False, name="sign_s")
    self.inverse_kernel = self.add_weight(
        shape=(c, c), initializer="identity", trainable=False,
        name="inverse_kernel")
    self.cached_log_abs_det = self.add_weight(
        shape=(), initializer="zeros", trainable=False,
        name="cached_log_abs_det")
    self.built = True

  def weight_matrix(self, dtype):
    """W as a tensor of `dtype`."""
    if self.parameterization == "full":
      return tf.cast(self.kernel, dtype)
    c = self.num_channels
    lower = tf.linalg.band_part(tf.cast(self.lower, dtype), -1, 0)
    lower = lower - tf.linalg.diag(tf.linalg.diag_part(lower)) + tf.eye(
        c, dtype=dtype)
    upper = tf.linalg.band_part(tf.cast(self.upper, dtype), 0, -1)
    upper = upper - tf.linalg.diag(tf.linalg.diag_part(upper))
    diag = tf.cast(self.sign_s, dtype) * tf.exp(tf.cast(self.log_s, dtype))
    upper = upper + tf.linalg.diag(diag)
    return tf.cast(self.permutation, dtype) @ lower @ upper

  def log_abs_det(self, dtype, cached: bool = False):
    """log|det W| (per position); `cached`: as `refresh_cache` stored it."""
    if cached:
      return tf.cast(self.cached_log_abs_det, dtype)
    if self.parameterization == "lu":
      return tf.reduce_sum(tf.cast(self.log_s, dtype))
    # slogdet in float64 keeps large matrices' determinants accurate.
    _, log_abs = tf.linalg.slogdet(tf.cast(self.kernel, tf.float64))
    return tf.cast(log_abs, dtype)

  def inverse_matrix(self, dtype, cached: bool = False):
    """W^-1; `cached`: as `refresh_cache` stored it."""
    if cached:
      return tf.cast(self.inverse_kernel, dtype)
    w = tf.cast(self.weight_matrix(tf.float64), tf.float64)
    return tf.cast(tf.linalg.inv(w), dtype)

  def refresh_cache(self):
    """Stores W^-1 and log|det W| (computed in float64) for `cached`."""
    w = self.weight_matrix(tf.float64)
    self.inverse_kernel.assign(
        tf.cast(tf.linalg.inv(w), self.inverse_kernel.dtype))
    _, log_abs = tf.linalg.slogdet(w)
    self.cached_log_abs_det.assign(
        tf.cast(log_abs, self.cached_log_abs_det.dtype))

  def make_bijector(self, *, initializing=False, cached=False):
    del initializing  # No data-dependent parameters.
    return InvertibleConv1x1(self, cached=cached, name=self.name)


def _lu_decompose(w):
  """P, L, U with w = P @ L @ U (partial pivoting), in NumPy."""
  n = w.shape[0]
  u = w.copy()
  lower = np.eye(n)
  perm = np.eye(n)
  for k in range(n - 1):
    pivot = k + int(np.argmax(np.abs(u[k:, k])))
    if pivot != k:
      u[[k, pivot], :] = u[[pivot, k], :]
      perm[[k, pivot], :] = perm[[pivot, k], :]
      lower[[k, pivot], :k] = lower[[pivot, k], :k]
    for i in range(k + 1, n):
      lower[i, k] = u[i, k] / u[k, k]
      u[i, :] -= lower[i, k] * u[k, :]
  # w = perm^T @ lower @ u
  return perm.T, lower, u


class InvertibleConv1x1(base.LayerBijector):
  """The invertible 1x1 convolution bijector (see module docstring).

  Args:
    layer: the `InvertibleConv1x1Layer` holding the weights.
    cached: read W^-1 and log|det W| from the layer's inference cache.
  """

  def __init__(self, layer: InvertibleConv1x1Layer, cached: bool = False,
               validate_args: bool = False, name: str = "invertible_conv1x1"):
    self._cached = cached
    super().__init__(layer, dict(locals()), validate_args, name)

  def _log_det(self, x):
    log_det = self._layer.log_abs_det(x.dtype, cached=self._cached)
    return base.per_position_log_det(log_det, x, self._layer.event_rank)

  def forward_and_log_det(self, x):
    y = base.mix_channels(x, self._layer.weight_matrix(x.dtype))
    return y, self._log_det(x)

  def inverse_and_log_det(self, y):
    x = base.mix_channels(y, self._layer.inverse_matrix(y.dtype,
                                                    cached=self._cached))
    return x, -self._log_det(y)
