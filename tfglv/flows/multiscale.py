"""The fine-grained multi-scale architecture (MaCow; DESIGN section 4).

Data -> latent, for levels `[n_0, [n_1a, n_1b], ..., n_top]`:

  * bottom level: `n_0` refined Glow steps on the raw image (no squeeze);
  * squeeze; each internal level holds sub-blocks of steps. After sub-block
    j a prior block (1x1 conv -> coupling conditioned on the kept channels
    and z -> ActNorm on the leaving channels) factors C0/M of the level's C0
    input channels out to N(0, I); the kept channels go on, squeezed, to the
    next level;
  * top level: `n_top` steps.

The factored pieces are reassembled (unsqueeze and concatenate, undoing the
squeezes) so that v has the image's own shape. For CIFAR-10 the shapes are
32x32x3 -> 16x16x12 -> 8x8x24 -> 4x4x48.

Each sub-block (its steps, then its prior block; the first sub-block of a
squeezed level starts with the `Squeeze`) is one `FlowChain`; between
sub-blocks the leaving channels are split off.
"""

from typing import List, Optional, Sequence, Tuple

import keras
import tensorflow as tf

from tfglv.flows import actnorm
from tfglv.flows import base
from tfglv.flows import conv1x1
from tfglv.flows import coupling
from tfglv.flows import glow_step
from tfglv.flows import shared
from tfglv.flows import squeeze
from tfglv.flows import tracking


@keras.saving.register_keras_serializable(package="tfglv")
class PriorBlockLayer(base.FlowLayer):
  """1x1 conv -> coupling (continuous, up, factor f) -> ActNorm on the leaving.

  The last `num_channels // factor` channels leave the level.
  """

  def __init__(self, num_channels: int, factor: int, hidden_channels: int,
               condition_dim: int = 0, transform: str = "affine",
               alpha: float = 1.0, conv1x1_parameterization: str = "full",
               net_dtype: Optional[str] = None, **kwargs):
    super().__init__(**kwargs)
    self.keep_arguments(
        num_channels=num_channels, factor=factor,
        hidden_channels=hidden_channels, condition_dim=condition_dim,
        transform=transform, alpha=alpha,
        conv1x1_parameterization=conv1x1_parameterization,
        net_dtype=net_dtype)
    self.num_leaving = num_channels // factor
    self.num_kept = num_channels - self.num_leaving
    policy = self.dtype_policy
    self.conv1x1 = conv1x1.InvertibleConv1x1Layer(
        num_channels, parameterization=conv1x1_parameterization, dtype=policy,
        name="conv1x1")
    self.coupling = coupling.CouplingLayer(
        num_channels, hidden_channels, split="continuous", order="up",
        factor=factor, transform=transform, alpha=alpha,
        condition_dim=condition_dim, net_dtype=net_dtype, dtype=policy,
        name="coupling")
    self.actnorm = actnorm.ActNormLayer(self.num_leaving, dtype=policy,
                                        name="actnorm")
    self.built = True

  def make_bijector(self, *, initializing=False, cached=False):
    options = dict(initializing=initializing, cached=cached)
    return base.FlowChain([
        self.conv1x1.make_bijector(**options),
        self.coupling.make_bijector(**options),
        base.OnTrailingChannels(self.actnorm.make_bijector(**options),
                                self.num_kept)
    ], name=self.name)


@keras.saving.register_keras_serializable(package="tfglv")
class MultiScaleFlowLayer(base.FlowLayer):
  """Owns every step and prior block of the conditional decoder.

  Args:
    image_shape: (H, W, C) of the data.
    num_steps: per level, an int (external) or a list of ints (internal).
    hidden_channels: coupling network width per level.
    num_prior_blocks: M of the fine-grained architecture.
    condition_dim: d_z (0 for an unconditional flow).
    transform, alpha: the couplings' transform ("affine"/"additive") and
      scale bound.
    conv1x1_parameterization: "full" or "lu".
    net_dtype: dtype policy of the coupling networks.
  """

  def __init__(self, image_shape: Sequence[int], num_steps: Sequence,
               hidden_channels: Sequence[int], num_prior_blocks: int = 4,
               condition_dim: int = 0, transform: str = "affine",
               alpha: float = 1.0, conv1x1_parameterization: str = "full",
               net_dtype: Optional[str] = None, **kwargs):
    super().__init__(**kwargs)
    height, width, channels = image_shape
    num_levels = len(num_steps)
    if num_levels < 2 or len(hidden_channels) != num_levels:
      raise ValueError(
          f"num_steps ({num_steps}) and hidden_channels ({hidden_channels}) "
          "must list the same number (>= 2) of levels.")
    if height % 2 ** (num_levels - 1) or width % 2 ** (num_levels - 1):
      raise ValueError(
          f"Image size {height}x{width} cannot be divided by the "
          f"{num_levels}-level multi-scale architecture: height and width "
          f"must be multiples of {2 ** (num_levels - 1)}.")
    pieces = dict(transform=transform, alpha=alpha,
                  conv1x1_parameterization=conv1x1_parameterization,
                  net_dtype=net_dtype)
    self.keep_arguments(
        image_shape=tuple(image_shape),
        num_steps=[list(s) if isinstance(s, (list, tuple)) else int(s)
                   for s in num_steps],
        hidden_channels=list(hidden_channels),
        num_prior_blocks=num_prior_blocks, condition_dim=condition_dim,
        **pieces)
    common = dict(condition_dim=condition_dim, dtype=self.dtype_policy,
                  **pieces)

    # levels[i] is a list of sub-blocks; a sub-block is (steps, prior_block
    # or None). External levels have one sub-block without a prior block.
    self.level_steps = []
    self.level_priors = []
    self.factored_channels = []  # per internal level
    self.piece_shapes = []  # (h, w, c) of each latent piece, internals first
    c, h, w = channels, height, width
    for index, (steps, hidden) in enumerate(zip(self.num_steps,
                                                self.hidden_channels)):
      if index > 0:
        c, h, w = c * 4, h // 2, w // 2
      internal = isinstance(steps, list)
      sub_blocks = steps if internal else [steps]
      if internal and len(sub_blocks) >= num_prior_blocks:
        raise ValueError(
            f"Level {index} has {len(sub_blocks)} sub-blocks; with "
            f"num_prior_blocks M={num_prior_blocks} it may have at most "
            f"{num_prior_blocks - 1}.")
      level_in = c
      blocks_steps, blocks_priors = [], []
      for sub_index, n in enumerate(sub_blocks):
        blocks_steps.append([
            tracking.register(self, glow_step.GlowStepLayer(
                c, hidden, name=f"level{index}_block{sub_index}_step{k}",
                **common)) for k in range(n)
        ])
        if internal:
          factor = num_prior_blocks - sub_index
          if c // factor < 1:
            raise ValueError(f"Level {index} has too few channels ({c}) to "
                             f"factor out with M={num_prior_blocks}.")
          prior = tracking.register(self, PriorBlockLayer(
              c, factor, hidden, name=f"level{index}_prior{sub_index}",
              **common))
          blocks_priors.append(prior)
          c = prior.num_kept
      self.level_steps.append(blocks_steps)
      self.level_priors.append(blocks_priors)
      if internal:
        self.factored_channels.append(level_in - c)
        self.piece_shapes.append((h, w, level_in - c))
    self.piece_shapes.append((h, w, c))
    self.top_channels = c
    self.built = True

  def make_bijector(self, *, initializing=False, cached=False):
    return MultiScaleFlow(self, initializing=initializing, cached=cached,
                          name=self.name)

  def blocks(self) -> list:
    """Every Glow step and prior block, in order."""
    return [block for steps, priors in zip(self.level_steps,
                                           self.level_priors)
            for block in [s for sub in steps for s in sub] + priors]

  def disassemble(self, v) -> List[tf.Tensor]:
    """Splits image-shaped v into its latent pieces (internals, then top)."""
    squeezer = squeeze.Squeeze()
    pieces = []
    h = v
    for index in range(1, len(self.num_steps)):
      h = squeezer.forward(h)
      if index < len(self.num_steps) - 1:
        keep = h.shape[-1] - self.factored_channels[index - 1]
        h, piece = base.split_channels(h, keep)
        pieces.append(piece)
    return pieces + [h]

  def assemble(self, pieces: Sequence[tf.Tensor]) -> tf.Tensor:
    """Inverse of `disassemble`: pieces -> image-shaped v."""
    unsqueeze = squeeze.Squeeze().inverse
    *factored, h = pieces
    h = unsqueeze(h)
    for piece in reversed(factored):
      h = unsqueeze(tf.concat([h, piece], axis=-1))
    return h


class MultiScaleFlow(base.FlowBijector):
  """Bijector of a `MultiScaleFlowLayer`: x -> v of the same shape.

  `forward(x, z=z)` is f(x; z); `inverse(v, z=z)` decodes. For an
  unconditional layer (`condition_dim == 0`) omit z. `initializing` and
  `cached` reach every piece (see `base.FlowLayer.make_bijector`).
  """

  def __init__(self, layer: MultiScaleFlowLayer, initializing: bool = False,
               cached: bool = False, validate_args: bool = False,
               name: str = "multi_scale_flow"):
    parameters = dict(locals())
    self._layer = layer
    self._options = dict(initializing=initializing, cached=cached)
    self.conditional = bool(layer.condition_dim)
    super().__init__(forward_min_event_ndims=3, validate_args=validate_args,
                     parameters=parameters, name=name)

  def _sub_blocks(self, index) -> List[Tuple[Optional[base.FlowChain],
                                             Optional[PriorBlockLayer]]]:
    """(chain or None, prior block layer or None) per sub-block of a level."""
    layer = self._layer
    priors = layer.level_priors[index]
    peers = layer.blocks()
    blocks = []
    for j, steps in enumerate(layer.level_steps[index]):
      # Repeated blocks share one traced function (`shared`).
      members = [shared.block(layer, s, peers=peers, **self._options)
                 for s in steps]
      prior = priors[j] if priors else None
      if prior is not None:
        members.append(shared.block(layer, prior, peers=peers,
                                    **self._options))
      if index > 0 and j == 0:
        members.insert(0, squeeze.Squeeze())
      blocks.append((base.FlowChain(members) if members else None, prior))
    return blocks

  def forward_and_log_det(self, x, z=None) -> Tuple[tf.Tensor, tf.Tensor]:
    layer = self._layer
    condition = {} if z is None else {"z": z}
    log_det = base.batch_zeros(x)
    pieces = []
    h = x
    for index in range(len(layer.num_steps)):
      leaving = []
      for chain, prior in self._sub_blocks(index):
        if chain is not None:
          h, ldj = chain.forward_and_log_det(h, **condition)
          log_det += ldj
        if prior is not None:
          h, piece = base.split_channels(h, prior.num_kept)
          leaving.append(piece)
      if leaving:
        pieces.append(tf.concat(leaving[::-1], axis=-1))
    return layer.assemble(pieces + [h]), log_det

  def inverse_and_log_det(self, v, z=None) -> Tuple[tf.Tensor, tf.Tensor]:
    layer = self._layer
    condition = {} if z is None else {"z": z}
    *factored, h = layer.disassemble(v)
    log_det = base.batch_zeros(v)
    for index in reversed(range(len(layer.num_steps))):
      blocks = self._sub_blocks(index)
      # Internal levels stored their leaving channels last-first.
      piece = factored.pop() if blocks[0][1] is not None else None
      for chain, prior in reversed(blocks):
        if prior is not None:
          entering, piece = base.split_channels(piece, prior.num_leaving)
          h = tf.concat([h, entering], axis=-1)
        if chain is not None:
          h, ldj = chain.inverse_and_log_det(h, **condition)
          log_det += ldj
    return h, log_det
