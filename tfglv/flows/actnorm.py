"""ActNorm: a per-channel affine map with data-dependent initialisation.

    y = x * exp(log_scale) + bias,    log|det dy/dx| = P * sum(log_scale)

over channels (the last axis), where P is the number of positions (H*W for
images, 1 for vectors). `initialize_from(x)` sets the parameters so that `y`
has zero mean and unit variance per channel on `x` (Kingma & Dhariwal, 2018);
the bijector of `make_bijector(initializing=True)` does so on its forward
input, then applies the map.
The `initialized` flag is a saved variable: a restored model never
re-initialises, and under a distribution strategy the initialisation runs
once, in cross-replica context, so every replica holds the same values.
"""

import keras
import tensorflow as tf

from tfglv.flows import base


@keras.saving.register_keras_serializable(package="tfglv")
class ActNormLayer(base.FlowLayer):
  """Owns ActNorm's variables: `log_scale`, `bias` [C] and `initialized`."""

  def __init__(self, num_channels: int, event_rank: int = 3,
               epsilon: float = 1e-6, **kwargs):
    super().__init__(**kwargs)
    if num_channels < 1:
      raise ValueError(f"num_channels must be >= 1; got {num_channels}.")
    base.check_event_rank(event_rank)
    self.keep_arguments(num_channels=num_channels, event_rank=event_rank,
                        epsilon=epsilon)
    self.log_scale = self.add_weight(
        shape=(num_channels,), initializer="zeros", name="log_scale")
    self.bias = self.add_weight(
        shape=(num_channels,), initializer="zeros", name="bias")
    self.initialized = self.add_weight(
        shape=(), initializer="zeros", dtype="int32", trainable=False,
        name="initialized", aggregation="only_first_replica")
    self.built = True

  def initialize_from(self, x):
    """Sets zero-mean, unit-variance outputs on `x` and marks initialised."""
    axes = list(range(len(x.shape) - 1))
    mean, variance = tf.nn.moments(tf.cast(x, self.variable_dtype), axes=axes)
    log_scale = -0.5 * tf.math.log(variance + self.epsilon)
    self.log_scale.assign(log_scale)
    self.bias.assign(-mean * tf.exp(log_scale))
    self.initialized.assign(1)

  def make_bijector(self, *, initializing=False, cached=False):
    del cached  # Nothing to cache.
    return ActNorm(self, initializing=initializing, name=self.name)


class ActNorm(base.LayerBijector):
  """The ActNorm bijector over the last axis of `x` (see module docstring).

  Args:
    layer: the `ActNormLayer` holding the variables.
    initializing: whether `forward` first initialises the layer from its
      input (`ActNormLayer.initialize_from`).
  """

  def __init__(self, layer: ActNormLayer, initializing: bool = False,
               validate_args: bool = False, name: str = "act_norm"):
    self._initializing = initializing
    super().__init__(layer, dict(locals()), validate_args, name)

  def _log_det(self, x):
    log_scale = tf.cast(self._layer.log_scale, x.dtype)
    return base.per_position_log_det(tf.reduce_sum(log_scale), x,
                                     self._layer.event_rank)

  def forward_and_log_det(self, x):
    if self._initializing:
      self._layer.initialize_from(x)
    log_scale = tf.cast(self._layer.log_scale, x.dtype)
    bias = tf.cast(self._layer.bias, x.dtype)
    return x * tf.exp(log_scale) + bias, self._log_det(x)

  def inverse_and_log_det(self, y):
    log_scale = tf.cast(self._layer.log_scale, y.dtype)
    bias = tf.cast(self._layer.bias, y.dtype)
    return (y - bias) * tf.exp(-log_scale), -self._log_det(y)
