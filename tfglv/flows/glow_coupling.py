"""Glow's affine coupling (Kingma & Dhariwal, 2018), for "glow_original".

The first C // 2 channels `x_a` condition the rest `x_b` (Glow's code splits
`z[..., :C // 2]` off). A network reads `x_a` and outputs `[shift, u]` (two
contiguous halves; Glow interleaves them, which only permutes the last
layer's units):

    scale = sigmoid(u + 2)                    (in (0, 1); 0.88 at u = 0)
    y_b   = (x_b + shift) * scale,   y_a = x_a
    log|det dy/dx| = sum(log scale)

The additive coupling ("additive") has no scale: y_b = x_b + shift.

The network is Glow's `f`:

    EdgeConv3x3(hidden) - ActNorm - ReLU - Conv1x1(hidden) - ActNorm - ReLU
    - WeightNormEdgeConv3x3(out)

Its 3x3 convolutions see the image border (`edge_conv`). Glow's last
layer is a zero-initialised convolution with a learned log-scale; ours is
weight-normalised with `g` and bias at exactly 0 (as in every other tfglv
coupling: a plain zero-initialised output with a fan-in of 9 * 513 diverges
at full width, `tfglv/layers/weight_norm.py`), so the coupling starts as
y_b = 0.88 x_b. The hidden ActNorms initialise on data like the flow's own:
a bijector made with `initializing=True` passes that to the network on its
forward pass (`GLVAE.initialize`).
"""

from typing import Optional

import keras
import tensorflow as tf

from tfglv.flows import actnorm
from tfglv.flows import base
from tfglv.flows import coupling
from tfglv.flows import edge_conv
from tfglv.layers import arguments

# Glow's offset: the scale is sigmoid(u + 2), near 1 when u is near 0.
SCALE_OFFSET = 2.0


@keras.saving.register_keras_serializable(package="tfglv")
class GlowCouplingNetwork(arguments.KeepsArguments, keras.layers.Layer):
  """Glow's coupling network (see module docstring).

  Args:
    in_channels: channels of x_a.
    out_channels: channels of [shift, u] (or of shift, additive).
    hidden_channels: width of the two hidden layers.
  """

  def __init__(self, in_channels: int, out_channels: int,
               hidden_channels: int, **kwargs):
    super().__init__(**kwargs)
    self.keep_arguments(in_channels=in_channels, out_channels=out_channels,
                        hidden_channels=hidden_channels)
    policy = self.dtype_policy
    self.conv_in = edge_conv.EdgeConv2D(hidden_channels, dtype=policy,
                                        name="conv_in")
    self.actnorm_in = actnorm.ActNormLayer(hidden_channels, dtype=policy,
                                           name="actnorm_in")
    self.conv_hidden = keras.layers.Conv2D(
        hidden_channels, 1, use_bias=False, dtype=policy,
        kernel_initializer=keras.initializers.RandomNormal(
            stddev=edge_conv.KERNEL_STDDEV), name="conv_hidden")
    self.actnorm_hidden = actnorm.ActNormLayer(hidden_channels, dtype=policy,
                                               name="actnorm_hidden")
    self.conv_out = edge_conv.WeightNormEdgeConv2D(
        out_channels, 3, init_scale=0.0, dtype=policy, name="conv_out")
    for conv, channels in ((self.conv_in, in_channels),
                           (self.conv_hidden, hidden_channels),
                           (self.conv_out, hidden_channels)):
      conv.build((None, None, None, channels))
    self.built = True

  def call(self, inputs, cached=False, initializing=False):
    """`initializing`: the hidden ActNorms first set themselves on this
    input (data-dependent init)."""
    h = self.conv_in(inputs)
    h, _ = self.actnorm_in.make_bijector(
        initializing=initializing).forward_and_log_det(h)
    h = self.conv_hidden(keras.activations.relu(h))
    h, _ = self.actnorm_hidden.make_bijector(
        initializing=initializing).forward_and_log_det(h)
    return self.conv_out(keras.activations.relu(h), cached=cached)


@keras.saving.register_keras_serializable(package="tfglv")
class GlowCouplingLayer(base.FlowLayer):
  """Owns Glow's coupling network; `bijector` does the math.

  Args:
    num_channels: C >= 2, the size of the last axis of x.
    hidden_channels: width of the network.
    transform: "affine" or "additive".
    net_dtype: Keras dtype policy of the network (e.g. "mixed_bfloat16").
  """

  event_rank = 3  # NHWC images only.

  def __init__(self, num_channels: int, hidden_channels: int,
               transform: str = "affine", net_dtype: Optional[str] = None,
               **kwargs):
    super().__init__(**kwargs)
    if transform not in coupling.TRANSFORMS:
      raise ValueError(f"Unknown transform {transform!r}; allowed: "
                       f"{', '.join(coupling.TRANSFORMS)}.")
    if num_channels < 2:
      raise ValueError("A coupling needs num_channels >= 2 to split; got "
                       f"{num_channels}.")
    self.keep_arguments(num_channels=num_channels,
                        hidden_channels=hidden_channels, transform=transform,
                        net_dtype=net_dtype)
    self.num_conditioning = num_channels // 2
    self.num_transformed = num_channels - self.num_conditioning
    out = self.num_transformed * (2 if transform == "affine" else 1)
    self.network = GlowCouplingNetwork(
        self.num_conditioning, out, hidden_channels,
        dtype=net_dtype or self.dtype_policy, name="network")
    self.built = True

  def make_bijector(self, *, initializing=False, cached=False):
    return GlowCoupling(self, initializing=initializing, cached=cached,
                        name=self.name)


class GlowCoupling(base.LayerBijector):
  """The bijector of a `GlowCouplingLayer` (see module docstring).

  Args:
    layer: the `GlowCouplingLayer` holding the network.
    initializing: the network's ActNorms initialise on the forward pass.
    cached: the network's weight-normalised output reads its stored kernel.
  """

  def __init__(self, layer: GlowCouplingLayer, initializing: bool = False,
               cached: bool = False, validate_args: bool = False,
               name: Optional[str] = None):
    self._initializing = initializing
    self._cached = cached
    super().__init__(layer, dict(locals()), validate_args, name)

  def _shift_and_log_scale(self, conditioning, initializing=False):
    """(shift, log scale or None for the additive coupling)."""
    params = self._layer.network(conditioning, cached=self._cached,
                                 initializing=initializing)
    params = tf.cast(params, conditioning.dtype)
    if self._layer.transform == "additive":
      return params, None
    shift, u = base.split_channels(params, self._layer.num_transformed)
    return shift, tf.math.log_sigmoid(u + SCALE_OFFSET)

  def forward_and_log_det(self, x):
    conditioning, transformed = base.split_channels(
        x, self._layer.num_conditioning)
    shift, log_scale = self._shift_and_log_scale(conditioning,
                                                 self._initializing)
    transformed = transformed + shift
    log_det = base.batch_zeros(x)
    if log_scale is not None:
      transformed = transformed * tf.exp(log_scale)
      log_det = tf.reduce_sum(log_scale, axis=[1, 2, 3])
    return tf.concat([conditioning, transformed], axis=-1), log_det

  def inverse_and_log_det(self, y):
    conditioning, transformed = base.split_channels(
        y, self._layer.num_conditioning)
    shift, log_scale = self._shift_and_log_scale(conditioning)
    log_det = base.batch_zeros(y)
    if log_scale is not None:
      transformed = transformed * tf.exp(-log_scale)
      log_det = -tf.reduce_sum(log_scale, axis=[1, 2, 3])
    return tf.concat([conditioning, transformed - shift], axis=-1), log_det
