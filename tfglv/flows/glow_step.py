"""The refined Glow step (DESIGN section 4; paper section 2.3).

In the data -> latent direction:

    ActNorm -> invertible 1x1 conv -> coupling (continuous, up)
    -> coupling (continuous, down) -> ActNorm -> coupling (alternate, up)
    -> coupling (alternate, down)

Four couplings, two ActNorms and one 1x1 convolution per step. The couplings
see z (when `condition_dim > 0`); ActNorm and the 1x1 convolution never do.

The same step serves images and vectors (`event_rank`):
  * 3: NHWC images, convolutional coupling networks (the decoder);
  * 1: vectors, where the 1x1 convolution is a d x d linear map with
    orthogonal init (named "linear") and the couplings use MLP networks
    (the prior on z, DESIGN section 3).
"""

from typing import Optional

import keras

from tfglv.flows import actnorm
from tfglv.flows import base
from tfglv.flows import conv1x1
from tfglv.flows import coupling


@keras.saving.register_keras_serializable(package="tfglv")
class GlowStepLayer(base.FlowLayer):
  """Owns the sub-layers of one refined Glow step.

  Args:
    num_channels: C, the size of the last axis.
    hidden_channels: width of the coupling networks.
    condition_dim: d_z, or 0 for unconditional couplings.
    transform, alpha: the couplings' transform and scale bound.
    conv1x1_parameterization: "full" or "lu".
    net_dtype: dtype policy of the coupling networks.
    seed: seed of the 1x1 convolution's orthogonal init.
    event_rank: 3 (images) or 1 (vectors); see the module docstring.
    name_prefix: prefix of the sub-layers' names (the prior's flat names,
      "step0_actnorm_in", ...: variable paths and optimizer slot names
      derive from them).
  """

  def __init__(self, num_channels: int, hidden_channels: int,
               condition_dim: int = 0, transform: str = "affine",
               alpha: float = 1.0, conv1x1_parameterization: str = "full",
               net_dtype: Optional[str] = None, seed=None,
               event_rank: int = 3, name_prefix: str = "", **kwargs):
    super().__init__(**kwargs)
    base.check_event_rank(event_rank)
    self.keep_arguments(
        num_channels=num_channels, hidden_channels=hidden_channels,
        condition_dim=condition_dim, transform=transform, alpha=alpha,
        conv1x1_parameterization=conv1x1_parameterization,
        net_dtype=net_dtype, seed=seed, event_rank=event_rank,
        name_prefix=name_prefix)
    policy = self.dtype_policy
    common = dict(event_rank=event_rank, dtype=policy)
    self.actnorm_in = actnorm.ActNormLayer(
        num_channels, name=f"{name_prefix}actnorm_in", **common)
    self.conv1x1 = conv1x1.InvertibleConv1x1Layer(
        num_channels, parameterization=conv1x1_parameterization, seed=seed,
        name=name_prefix + ("conv1x1" if event_rank == 3 else "linear"),
        **common)

    def coupling_layer(split, order):
      return coupling.CouplingLayer(
          num_channels, hidden_channels, split=split, order=order,
          transform=transform, alpha=alpha, condition_dim=condition_dim,
          net_dtype=net_dtype, name=f"{name_prefix}coupling_{split}_{order}",
          **common)

    # Built in data -> latent order: the order of the variables.
    self.coupling_continuous_up = coupling_layer("continuous", "up")
    self.coupling_continuous_down = coupling_layer("continuous", "down")
    self.actnorm_mid = actnorm.ActNormLayer(
        num_channels, name=f"{name_prefix}actnorm_mid", **common)
    self.coupling_alternate_up = coupling_layer("alternate", "up")
    self.coupling_alternate_down = coupling_layer("alternate", "down")
    self.built = True

  @property
  def pieces(self):
    """The sub-layers in data -> latent order."""
    return [self.actnorm_in, self.conv1x1, self.coupling_continuous_up,
            self.coupling_continuous_down, self.actnorm_mid,
            self.coupling_alternate_up, self.coupling_alternate_down]

  def make_bijector(self, *, initializing=False, cached=False):
    return base.FlowChain(
        [p.make_bijector(initializing=initializing, cached=cached)
         for p in self.pieces],
        forward_min_event_ndims=self.event_rank, name=self.name)
