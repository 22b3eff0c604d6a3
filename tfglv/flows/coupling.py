"""Conditional affine and additive couplings (DESIGN section 4).

The channels of `x` are split into a conditioning part `x_a` and a
transformed part `x_b`. A network reads `x_a` and the global code `z` and
outputs `[shift, u]` (two contiguous halves):

    scale = alpha * tanh(u / 2) + 1           (in (1 - alpha, 1 + alpha))
    y_b   = scale * x_b + shift,   y_a = x_a
    log|det dy/dx| = sum(log scale)

`AffineCoupling` is that map; `AdditiveCoupling` has no scale (its network
outputs only the shift) and a zero log-det (the 5-bit tables).
`CouplingLayer(transform=...)` owns the network and picks the bijector.

Split patterns over C channels, with `n_b = C // factor` transformed:
  * continuous/up: the first C - n_b channels condition the rest;
  * continuous/down: the last C - n_b channels condition the first n_b;
  * alternate/up: even-indexed channels condition odd-indexed ones;
  * alternate/down: odd-indexed channels condition even-indexed ones.
Alternate needs factor 2 and an even C; with odd C it falls back to
continuous (as the authors' code does).

A single-channel image (the first level of a grayscale flow) has no
channels to split, so its couplings split sub-pixels instead: they work on
`space_to_depth(x, 2)`, the 4 pixels of each 2x2 block as channels at half
the side, and map back. Continuous splits then condition the lower row of
each block on the upper one (or back), alternate splits the right column
on the left one (or back). Every coupling of a Glow step still transforms
half of the values, as on colour images.

The network of an image coupling is
  Conv3x3(hidden, no bias) - ELU - Conv1x1(hidden, no bias) + Dense(z)
  - ELU - Conv3x3(out)
whose last convolution is weight-normalised with its length `g` and bias at
exactly zero, so every coupling starts as the identity and only `g` sets how
fast its output grows (a plain zero-initialised kernel diverges at full
width: see `tfglv/layers/weight_norm.py`). `Dense(z)` adds a per-channel
vector at every pixel; each coupling has its own. Vector couplings (the prior
on z) use an MLP `Dense(H) - ELU - Dense(H) - ELU - Dense(out)` whose last
layer is weight-normalised the same way. A network called with `cached=True`
reads that last layer's stored kernel (`WeightNormLayer.refresh_cache`).

The network may compute in bfloat16 or float16 (`net_dtype=
"mixed_bfloat16"` or `"mixed_float16"`; float16 trains with a dynamic loss
scale, `tfglv.loss_scale`): its output is cast to float32 before the affine
update and the log-det. One coupling inverts exactly, since its inverse runs
the same network on the same `x_a`. A deep chain does not: the inverse
rebuilds each coupling's `x_a` only to float32 accuracy, and a 1e-7
difference can flip a 16-bit rounding of the network's input. So 16-bit
networks are a training speed-up; decode and export with float32 networks
(same weights: variables stay float32).
"""

from typing import Optional

import keras
import tensorflow as tf

from tfglv.flows import base
from tfglv.layers import arguments
from tfglv.layers import weight_norm

SPLITS = ("continuous", "alternate")
ORDERS = ("up", "down")
TRANSFORMS = ("affine", "additive")


def _elu(x, shift=None):
  """ELU(x + shift) in x's dtype; for bfloat16 x, computed in float32.

  CPUs have no vectorised bfloat16 arithmetic: TF's bfloat16 ELU ran 7x
  slower than its float32 one and took 22% of a full bfloat16 training step
  (profile). The convolutions still read and write bfloat16; the sum and
  the ELU are rounded to bfloat16 once, at the end.
  """
  if x.dtype != tf.bfloat16:
    return tf.nn.elu(x if shift is None else x + shift)
  x = tf.cast(x, tf.float32)
  if shift is not None:
    x += tf.cast(shift, tf.float32)
  return tf.cast(tf.nn.elu(x), tf.bfloat16)


@keras.saving.register_keras_serializable(package="tfglv")
class ConvCouplingNetwork(arguments.KeepsArguments, keras.layers.Layer):
  """Conv3x3 - ELU - Conv1x1 (+ Dense(z)) - ELU - WeightNormConv3x3 (g = 0)."""

  def __init__(self, in_channels: int, out_channels: int, hidden_channels: int,
               condition_dim: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.keep_arguments(in_channels=in_channels, out_channels=out_channels,
                        hidden_channels=hidden_channels,
                        condition_dim=condition_dim)
    policy = self.dtype_policy
    self.conv_in = keras.layers.Conv2D(
        hidden_channels, 3, padding="same", use_bias=False, dtype=policy,
        kernel_initializer=weight_norm.fan_in_uniform(), name="conv_in")
    self.conv_hidden = keras.layers.Conv2D(
        hidden_channels, 1, use_bias=False, dtype=policy,
        kernel_initializer=weight_norm.fan_in_uniform(), name="conv_hidden")
    self.condition_projection = None
    if condition_dim:
      self.condition_projection = keras.layers.Dense(
          hidden_channels, dtype=policy,
          kernel_initializer=weight_norm.fan_in_uniform(),
          bias_initializer=keras.initializers.RandomUniform(
              -condition_dim ** -0.5, condition_dim ** -0.5),
          name="condition_projection")
      self.condition_projection.build((None, condition_dim))
    self.conv_out = weight_norm.WeightNormConv2D(
        out_channels, 3, init_scale=0.0, dtype=policy, name="conv_out")
    self.conv_in.build((None, None, None, in_channels))
    self.conv_hidden.build((None, None, None, hidden_channels))
    self.conv_out.build((None, None, None, hidden_channels))
    self.built = True

  def call(self, inputs, condition=None, cached=False):
    h = _elu(self.conv_in(inputs))
    # The 1x1 convolution as one matmul over [N * H * W, C]: the same
    # product, and its kernel gradient is a plain matmul too, which oneDNN
    # runs 1.3x (float32) / 1.2x (bfloat16) faster than the 1x1
    # Conv2DBackpropFilter (measured at 16x16x512, batch 16). The
    # [1, 1, C, C] kernel is reshaped, not sliced: a slice's gradient is a
    # copy.
    kernel = self.conv_hidden.kernel
    h = base.mix_channels(h, tf.cast(tf.reshape(kernel, kernel.shape[2:]),
                                     self.compute_dtype))
    shift = None
    if self.condition_projection is not None:
      if condition is None:
        raise ValueError("This coupling is conditional: pass z.")
      shift = self.condition_projection(condition)[:, None, None, :]
    return self.conv_out(_elu(h, shift), cached=cached)


@keras.saving.register_keras_serializable(package="tfglv")
class MLPCouplingNetwork(arguments.KeepsArguments, keras.layers.Layer):
  """Dense(H) - ELU - Dense(H) - ELU - WeightNormDense(out) (g = 0)."""

  def __init__(self, in_channels: int, out_channels: int, hidden_channels: int,
               condition_dim: int = 0, **kwargs):
    super().__init__(**kwargs)
    if condition_dim:
      raise ValueError("MLP couplings (the prior on z) are unconditional; "
                       f"got condition_dim={condition_dim}.")
    self.keep_arguments(in_channels=in_channels, out_channels=out_channels,
                        hidden_channels=hidden_channels, condition_dim=0)
    policy = self.dtype_policy
    self.dense_in = keras.layers.Dense(
        hidden_channels, kernel_initializer=weight_norm.fan_in_uniform(),
        dtype=policy, name="dense_in")
    self.dense_hidden = keras.layers.Dense(
        hidden_channels, kernel_initializer=weight_norm.fan_in_uniform(),
        dtype=policy, name="dense_hidden")
    self.dense_out = weight_norm.WeightNormDense(
        out_channels, init_scale=0.0, dtype=policy, name="dense_out")
    self.dense_in.build((None, in_channels))
    self.dense_hidden.build((None, hidden_channels))
    self.dense_out.build((None, hidden_channels))
    self.built = True

  def call(self, inputs, condition=None, cached=False):
    h = keras.activations.elu(self.dense_in(inputs))
    h = keras.activations.elu(self.dense_hidden(h))
    return self.dense_out(h, cached=cached)


@keras.saving.register_keras_serializable(package="tfglv")
class CouplingLayer(base.FlowLayer):
  """Owns a coupling's network; `bijector` does the math.

  Args:
    num_channels: C, the size of the last axis of x.
    hidden_channels: width of the coupling network.
    split: "continuous" or "alternate".
    order: "up" or "down".
    factor: 1/fraction of channels transformed (2; M-j in prior blocks).
    transform: "affine" or "additive".
    alpha: bound of the scale, in (0, 1].
    condition_dim: d_z, or 0 for an unconditional coupling.
    event_rank: 3 for images (conv network), 1 for vectors (MLP).
    net_dtype: Keras dtype policy of the network (e.g. "mixed_bfloat16").
  """

  def __init__(self, num_channels: int, hidden_channels: int,
               split: str = "continuous", order: str = "up", factor: int = 2,
               transform: str = "affine", alpha: float = 1.0,
               condition_dim: int = 0, event_rank: int = 3,
               net_dtype: Optional[str] = None, **kwargs):
    super().__init__(**kwargs)
    if split not in SPLITS:
      raise ValueError(f"Unknown split {split!r}; allowed: "
                       f"{', '.join(SPLITS)}.")
    if order not in ORDERS:
      raise ValueError(f"Unknown order {order!r}; allowed: "
                       f"{', '.join(ORDERS)}.")
    if transform not in TRANSFORMS:
      raise ValueError(f"Unknown transform {transform!r}; allowed: "
                       f"{', '.join(TRANSFORMS)}.")
    if not 0.0 < alpha <= 1.0:
      raise ValueError(f"alpha must be in (0, 1]; got {alpha}.")
    base.check_event_rank(event_rank)
    # One image channel: split the 2x2 sub-pixels (see module docstring).
    self.sub_pixel = event_rank == 3 and num_channels == 1
    width = 4 if self.sub_pixel else num_channels  # Channels being split.
    if factor < 2 or width < factor:
      raise ValueError(f"factor must be in [2, num_channels={num_channels}]; "
                       f"got {factor}.")
    if split == "alternate" and factor != 2:
      raise ValueError("The alternate split needs factor 2; "
                       f"got factor {factor}.")
    self.keep_arguments(
        num_channels=num_channels, hidden_channels=hidden_channels,
        split=split, order=order, factor=factor, transform=transform,
        alpha=alpha, condition_dim=condition_dim, event_rank=event_rank,
        net_dtype=net_dtype)
    self.requested_split = split
    self.split_width = width
    # Odd channel counts cannot alternate evenly: fall back to continuous
    # (the config keeps the requested split).
    self.split = "continuous" if width % 2 else split
    self.num_transformed = width // factor
    self.num_conditioning = width - self.num_transformed
    out = self.num_transformed * (2 if transform == "affine" else 1)
    network = ConvCouplingNetwork if event_rank == 3 else MLPCouplingNetwork
    self.network = network(self.num_conditioning, out, hidden_channels,
                           condition_dim=condition_dim,
                           dtype=net_dtype or self.dtype_policy,
                           name="network")
    self.built = True

  def split_channels(self, x):
    """Returns (conditioning, transformed) parts of x."""
    if self.sub_pixel:
      x = tf.nn.space_to_depth(x, 2)
    if self.split == "alternate":
      pairs = tf.reshape(
          x, tf.concat([tf.shape(x)[:-1], [self.split_width // 2, 2]], 0))
      even, odd = tf.unstack(pairs, num=2, axis=-1)
      return (even, odd) if self.order == "up" else (odd, even)
    if self.order == "up":
      return base.split_channels(x, self.num_conditioning)
    transformed, conditioning = base.split_channels(x, self.num_transformed)
    return conditioning, transformed

  def merge_channels(self, conditioning, transformed):
    """Inverse of `split_channels`."""
    if self.split == "alternate":
      even, odd = ((conditioning, transformed) if self.order == "up" else
                   (transformed, conditioning))
      pairs = tf.stack([even, odd], axis=-1)
      merged = tf.reshape(
          pairs, tf.concat([tf.shape(even)[:-1], [self.split_width]], 0))
    elif self.order == "up":
      merged = tf.concat([conditioning, transformed], axis=-1)
    else:
      merged = tf.concat([transformed, conditioning], axis=-1)
    return tf.nn.depth_to_space(merged, 2) if self.sub_pixel else merged

  def make_bijector(self, *, initializing=False, cached=False):
    del initializing  # No data-dependent parameters.
    bijector = (AffineCoupling if self.transform == "affine" else
                AdditiveCoupling)
    return bijector(self, cached=cached, name=self.name)


class Coupling(base.LayerBijector):
  """What both couplings share: the split, the network call, the merge.

  Subclasses map the transformed part given the network's output `params`
  (`_forward_part`, `_inverse_part`, each returning the new part and the
  `[batch]` log-det).

  Args:
    layer: the `CouplingLayer` holding the network and the split pattern.
    cached: run the network on its inference cache (its weight-normalised
      last layer reads the stored kernel).
  """

  def __init__(self, layer: CouplingLayer, cached: bool = False,
               validate_args: bool = False, name: Optional[str] = None):
    # name None: TFP names the bijector after its class ("affine_coupling").
    self._cached = cached
    self.conditional = bool(layer.condition_dim)
    super().__init__(layer, dict(locals()), validate_args, name)

  def _params(self, conditioning, z):
    params = self._layer.network(conditioning, z, cached=self._cached)
    return tf.cast(params, conditioning.dtype)

  def _forward_part(self, transformed, params):
    raise NotImplementedError

  def _inverse_part(self, transformed, params):
    raise NotImplementedError

  def forward_and_log_det(self, x, z=None):
    conditioning, transformed = self._layer.split_channels(x)
    transformed, log_det = self._forward_part(
        transformed, self._params(conditioning, z))
    return self._layer.merge_channels(conditioning, transformed), log_det

  def inverse_and_log_det(self, y, z=None):
    conditioning, transformed = self._layer.split_channels(y)
    transformed, log_det = self._inverse_part(
        transformed, self._params(conditioning, z))
    return self._layer.merge_channels(conditioning, transformed), log_det


class AdditiveCoupling(Coupling):
  """y_b = x_b + shift, log-det 0 (see module docstring)."""

  def _forward_part(self, transformed, shift):
    return transformed + shift, base.batch_zeros(transformed)

  def _inverse_part(self, transformed, shift):
    return transformed - shift, -base.batch_zeros(transformed)


class AffineCoupling(Coupling):
  """y_b = scale * x_b + shift with a bounded scale (see module docstring)."""

  def _shift_and_scale(self, params):
    shift, u = base.split_channels(params, self._layer.num_transformed)
    return shift, self._layer.alpha * tf.tanh(u / 2.0) + 1.0

  @staticmethod
  def _log_det(scale):
    axes = list(range(1, len(scale.shape)))
    return tf.reduce_sum(tf.math.log(scale), axis=axes)

  def _forward_part(self, transformed, params):
    shift, scale = self._shift_and_scale(params)
    return transformed * scale + shift, self._log_det(scale)

  def _inverse_part(self, transformed, params):
    shift, scale = self._shift_and_scale(params)
    return (transformed - shift) / scale, -self._log_det(scale)
