"""The refined Glow step (DESIGN section 4; paper section 2.3).

In the data -> latent direction:

    ActNorm -> invertible 1x1 conv -> coupling (continuous, up)
    -> coupling (continuous, down) -> ActNorm -> coupling (alternate, up)
    -> coupling (alternate, down)

Four couplings, two ActNorms and one 1x1 convolution per step. The couplings
see z (when `condition_dim > 0`); ActNorm and the 1x1 convolution never do.
"""

from typing import Optional

import keras

from tfglv.flows import actnorm
from tfglv.flows import base
from tfglv.flows import conv1x1
from tfglv.flows import coupling


class GlowStepLayer(keras.layers.Layer):
  """Owns the sub-layers of one refined Glow step."""

  def __init__(self, num_channels: int, hidden_channels: int,
               condition_dim: int = 0, transform: str = "affine",
               alpha: float = 1.0, conv1x1_parameterization: str = "full",
               net_dtype: Optional[str] = None, seed=None, **kwargs):
    super().__init__(**kwargs)
    self.num_channels = num_channels
    self.hidden_channels = hidden_channels
    self.condition_dim = condition_dim
    self.transform = transform
    self.alpha = alpha
    self.conv1x1_parameterization = conv1x1_parameterization
    self.net_dtype = net_dtype
    self.seed = seed
    policy = self.dtype_policy
    self.actnorm_in = actnorm.ActNormLayer(num_channels, dtype=policy,
                                           name="actnorm_in")
    self.conv1x1 = conv1x1.InvertibleConv1x1Layer(
        num_channels, parameterization=conv1x1_parameterization, seed=seed,
        dtype=policy, name="conv1x1")
    common = dict(num_channels=num_channels, hidden_channels=hidden_channels,
                  transform=transform, alpha=alpha,
                  condition_dim=condition_dim, net_dtype=net_dtype,
                  dtype=policy)
    self.coupling_continuous_up = coupling.CouplingLayer(
        split="continuous", order="up", name="coupling_continuous_up",
        **common)
    self.coupling_continuous_down = coupling.CouplingLayer(
        split="continuous", order="down", name="coupling_continuous_down",
        **common)
    self.actnorm_mid = actnorm.ActNormLayer(num_channels, dtype=policy,
                                            name="actnorm_mid")
    self.coupling_alternate_up = coupling.CouplingLayer(
        split="alternate", order="up", name="coupling_alternate_up", **common)
    self.coupling_alternate_down = coupling.CouplingLayer(
        split="alternate", order="down", name="coupling_alternate_down",
        **common)
    self.built = True

  def get_config(self):
    config = super().get_config()
    config.update(num_channels=self.num_channels,
                  hidden_channels=self.hidden_channels,
                  condition_dim=self.condition_dim, transform=self.transform,
                  alpha=self.alpha,
                  conv1x1_parameterization=self.conv1x1_parameterization,
                  net_dtype=self.net_dtype, seed=self.seed)
    return config

  @property
  def pieces(self):
    """The sub-layers in data -> latent order."""
    return [self.actnorm_in, self.conv1x1, self.coupling_continuous_up,
            self.coupling_continuous_down, self.actnorm_mid,
            self.coupling_alternate_up, self.coupling_alternate_down]

  @property
  def bijector(self):
    return base.FlowChain([p.bijector for p in self.pieces], name=self.name)
