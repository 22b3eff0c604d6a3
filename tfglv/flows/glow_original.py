"""The original Glow (Kingma & Dhariwal, 2018): the "glow_original" decoder.

The paper's baseline (Table 1: 3.35 bits/dim on CIFAR-10; Table 6), with
Glow's own step and multi-scale architecture. Data -> latent, for L levels
of K steps:

    for each level:  squeeze (half the side, 4x the channels)
                     K steps: ActNorm -> invertible 1x1 conv -> coupling
                     (one `glow_coupling` coupling per step)
                     but the last level: split off the second half of the
                     channels, scored by a Gaussian whose mean and log-std
                     a zero-initialised 3x3 convolution reads off the kept
                     half (Glow's `split2d`); the kept half goes on
    at the top:      the rest, scored by a learned Gaussian (Glow's
                     `--learntop`: the convolution of an empty input,
                     a learned map of positions; `edge_conv`)

Each Gaussian is a bijector here (`GaussianPriorLayer`): it standardises
its channels, x -> (x - mean) * exp(-log_std) with log-det -sum(log_std),
so every piece of the latent is N(0, I), exactly Glow's likelihood, and
sampling v ~ N(0, T^2 I) is Glow's sampling at temperature T. The pieces
are reassembled (concatenated and unsqueezed, level by level) so that v has
the image's shape, as for the refined flow (`multiscale`). For CIFAR-10
(L = 3): 32x32x3 -> 16x16x12 -> 8x8x24 -> 4x4x48.

Every level's channel count is even (4x the kept channels), so any image
channel count works, grayscale included. The image side must be divisible
by 2**L.
"""

from typing import List, Optional, Sequence

import keras
import tensorflow as tf

from tfglv.flows import actnorm
from tfglv.flows import base
from tfglv.flows import conv1x1
from tfglv.flows import edge_conv
from tfglv.flows import glow_coupling
from tfglv.flows import squeeze
from tfglv.flows import tracking


@keras.saving.register_keras_serializable(package="tfglv")
class GaussianPriorLayer(base.FlowLayer):
  """A learned Gaussian over the last channels, given the first ones.

  The first `num_conditioning` channels pass; the rest are standardised by
  the mean and log-std that a `ZeroEdgeConv2D` reads off the first ones
  (none: a learned map of positions, Glow's top prior). It starts as
  N(0, I).
  """

  event_rank = 3  # NHWC images only.

  def __init__(self, num_channels: int, num_conditioning: int, **kwargs):
    super().__init__(**kwargs)
    if not 0 <= num_conditioning < num_channels:
      raise ValueError(f"num_conditioning must be in [0, {num_channels}); "
                       f"got {num_conditioning}.")
    self.keep_arguments(num_channels=num_channels,
                        num_conditioning=num_conditioning)
    self.num_scored = num_channels - num_conditioning
    self.conv = edge_conv.ZeroEdgeConv2D(2 * self.num_scored,
                                         dtype=self.dtype_policy, name="conv")
    self.conv.build((None, None, None, num_conditioning))
    self.built = True

  def make_bijector(self, *, initializing=False, cached=False):
    del initializing, cached  # No data-dependent parameters, no cache.
    return GaussianPrior(self, name=self.name)


class GaussianPrior(base.LayerBijector):
  """Standardises the scored channels (see `GaussianPriorLayer`)."""

  def __init__(self, layer: GaussianPriorLayer, validate_args: bool = False,
               name: Optional[str] = None):
    super().__init__(layer, dict(locals()), validate_args, name)

  def _split(self, x):
    """(conditioning, scored, mean, log_std, log-std sum [batch])."""
    conditioning, scored = base.split_channels(
        x, self._layer.num_conditioning)
    mean, log_std = base.split_channels(self._layer.conv(conditioning),
                                        self._layer.num_scored)
    log_std_sum = tf.reduce_sum(log_std, axis=[1, 2, 3]) + base.batch_zeros(x)
    return conditioning, scored, mean, log_std, log_std_sum

  def forward_and_log_det(self, x):
    conditioning, scored, mean, log_std, log_std_sum = self._split(x)
    standardised = (scored - mean) * tf.exp(-log_std)
    return tf.concat([conditioning, standardised], axis=-1), -log_std_sum

  def inverse_and_log_det(self, y):
    conditioning, standardised, mean, log_std, log_std_sum = self._split(y)
    scored = standardised * tf.exp(log_std) + mean
    return tf.concat([conditioning, scored], axis=-1), log_std_sum


@keras.saving.register_keras_serializable(package="tfglv")
class OriginalGlowStepLayer(base.FlowLayer):
  """One Glow step: ActNorm -> invertible 1x1 conv -> coupling."""

  def __init__(self, num_channels: int, hidden_channels: int,
               transform: str = "affine",
               conv1x1_parameterization: str = "full",
               net_dtype: Optional[str] = None, **kwargs):
    super().__init__(**kwargs)
    self.keep_arguments(num_channels=num_channels,
                        hidden_channels=hidden_channels, transform=transform,
                        conv1x1_parameterization=conv1x1_parameterization,
                        net_dtype=net_dtype)
    policy = self.dtype_policy
    self.actnorm = actnorm.ActNormLayer(num_channels, dtype=policy,
                                        name="actnorm")
    self.conv1x1 = conv1x1.InvertibleConv1x1Layer(
        num_channels, parameterization=conv1x1_parameterization,
        dtype=policy, name="conv1x1")
    self.coupling = glow_coupling.GlowCouplingLayer(
        num_channels, hidden_channels, transform=transform,
        net_dtype=net_dtype, dtype=policy, name="coupling")
    self.built = True

  def make_bijector(self, *, initializing=False, cached=False):
    options = dict(initializing=initializing, cached=cached)
    return base.FlowChain([self.actnorm.make_bijector(**options),
                           self.conv1x1.make_bijector(**options),
                           self.coupling.make_bijector(**options)],
                          name=self.name)


@keras.saving.register_keras_serializable(package="tfglv")
class OriginalGlowLayer(base.FlowLayer):
  """Owns every step and prior of the original Glow; v has x's shape.

  Args:
    image_shape: (H, W, C) of the data; H and W divisible by 2**num_levels.
    num_levels: L.
    num_steps: K, the steps of every level.
    hidden_channels: width of every coupling network.
    transform: the couplings' "affine" or "additive".
    conv1x1_parameterization: "full" or "lu".
    net_dtype: dtype policy of the coupling networks.
  """

  event_rank = 3  # NHWC images only.

  def __init__(self, image_shape: Sequence[int], num_levels: int,
               num_steps: int, hidden_channels: int,
               transform: str = "affine",
               conv1x1_parameterization: str = "full",
               net_dtype: Optional[str] = None, **kwargs):
    super().__init__(**kwargs)
    height, width, channels = image_shape
    if num_levels < 1 or height % 2 ** num_levels or width % 2 ** num_levels:
      raise ValueError(
          f"A {num_levels}-level Glow halves the image {num_levels} times: "
          f"height and width must be multiples of {2 ** num_levels}; got "
          f"{height}x{width}.")
    pieces = dict(transform=transform,
                  conv1x1_parameterization=conv1x1_parameterization,
                  net_dtype=net_dtype)
    self.keep_arguments(image_shape=tuple(image_shape), num_levels=num_levels,
                        num_steps=num_steps, hidden_channels=hidden_channels,
                        **pieces)
    # Per level: its steps, then its prior (split off, or the top).
    self.level_steps, self.level_priors = [], []
    self.piece_shapes = []  # (h, w, c) of each latent piece, top last
    c, h, w = channels, height, width
    for level in range(num_levels):
      c, h, w = 4 * c, h // 2, w // 2
      self.level_steps.append([tracking.register(
          self, OriginalGlowStepLayer(c, hidden_channels,
                                      name=f"level{level}_step{k}",
                                      dtype=self.dtype_policy, **pieces))
                               for k in range(num_steps)])
      top = level == num_levels - 1
      prior = tracking.register(self, GaussianPriorLayer(
          c, 0 if top else c // 2, dtype=self.dtype_policy,
          name="top_prior" if top else f"level{level}_split_prior"))
      self.level_priors.append(prior)
      self.piece_shapes.append((h, w, prior.num_scored))
      c = prior.num_conditioning
    self.built = True

  def make_bijector(self, *, initializing=False, cached=False):
    return OriginalGlow(self, initializing=initializing, cached=cached,
                        name=self.name)

  def assemble(self, pieces: Sequence[tf.Tensor]) -> tf.Tensor:
    """Image-shaped v from its latent pieces (`disassemble`'s)."""
    unsqueeze = squeeze.Squeeze().inverse
    *factored, h = pieces
    for piece in reversed(factored):
      h = tf.concat([unsqueeze(h), piece], axis=-1)
    return unsqueeze(h)

  def disassemble(self, v) -> List[tf.Tensor]:
    """Splits image-shaped v into its latent pieces, one per level (the
    split-off halves, then the top): the inverse of `assemble`."""
    to_next_level = squeeze.Squeeze().forward
    h, pieces = to_next_level(v), []
    for prior in self.level_priors[:-1]:
      h, piece = base.split_channels(h, prior.num_conditioning)
      h = to_next_level(h)
      pieces.append(piece)
    return pieces + [h]


class OriginalGlow(base.LayerBijector):
  """Bijector of an `OriginalGlowLayer`: x -> v of the same shape.

  Unconditional (no z). `initializing` and `cached` reach every piece
  (see `base.FlowLayer.make_bijector`).
  """

  def __init__(self, layer: OriginalGlowLayer, initializing: bool = False,
               cached: bool = False, validate_args: bool = False,
               name: Optional[str] = None):
    self._options = dict(initializing=initializing, cached=cached)
    super().__init__(layer, dict(locals()), validate_args, name)

  def _level(self, index) -> base.FlowChain:
    """Squeeze, the level's steps, its prior."""
    layer = self._layer
    return base.FlowChain(
        [squeeze.Squeeze()] +
        [s.make_bijector(**self._options) for s in layer.level_steps[index]]
        + [layer.level_priors[index].make_bijector(**self._options)],
        name=f"level{index}")

  def forward_and_log_det(self, x):
    layer = self._layer
    log_det = base.batch_zeros(x)
    pieces = []
    h = x
    for index, prior in enumerate(layer.level_priors):
      h, ldj = self._level(index).forward_and_log_det(h)
      log_det += ldj
      if index < layer.num_levels - 1:
        h, piece = base.split_channels(h, prior.num_conditioning)
        pieces.append(piece)
    return layer.assemble(pieces + [h]), log_det

  def inverse_and_log_det(self, v):
    layer = self._layer
    *factored, h = layer.disassemble(v)
    log_det = base.batch_zeros(v)
    for index in reversed(range(layer.num_levels)):
      if index < layer.num_levels - 1:
        h = tf.concat([h, factored[index]], axis=-1)
      h, ldj = self._level(index).inverse_and_log_det(h)
      log_det += ldj
    return h, log_det
