"""Flow prior p(z) over the global code (DESIGN section 3).

Base N(0, I) in d_z dimensions. Each step, in the z -> base direction:

    ActNorm -> invertible d_z x d_z linear (orthogonal init)
    -> coupling (continuous, up) -> coupling (continuous, down) -> ActNorm
    -> coupling (alternate, up) -> coupling (alternate, down)

with MLP coupling networks `Dense(H) - ELU - Dense(H) - ELU - Dense(d_z)`
(last layer zero-initialised). log p(z) = log N(g(z); 0, I) + log|det dg/dz|.
"""

import math

import keras
import tensorflow as tf

from tfglv.flows import actnorm
from tfglv.flows import base
from tfglv.flows import conv1x1
from tfglv.flows import coupling
from tfglv.flows import tracking


def standard_normal_log_prob(x):
  """log N(x; 0, I) summed over all but the first axis."""
  axes = list(range(1, len(x.shape)))
  return -0.5 * tf.reduce_sum(tf.square(x) + math.log(2.0 * math.pi),
                              axis=axes)


class PriorFlowLayer(keras.layers.Layer):
  """Owns the prior flow's layers; `bijector` maps z to its base variable."""

  def __init__(self, latent_dim: int, num_steps: int = 2,
               hidden_units: int = 256, alpha: float = 1.0, **kwargs):
    super().__init__(**kwargs)
    if latent_dim < 2 or latent_dim % 2:
      raise ValueError(f"latent_dim must be an even integer >= 2; got "
                       f"{latent_dim}.")
    self.latent_dim = latent_dim
    self.num_steps = num_steps
    self.hidden_units = hidden_units
    self.alpha = alpha
    policy = self.dtype_policy
    common = dict(num_channels=latent_dim, hidden_channels=hidden_units,
                  alpha=alpha, event_rank=1, dtype=policy)
    self.steps = []
    for k in range(num_steps):
      self.steps.append([tracking.register(self, layer) for layer in [
          actnorm.ActNormLayer(latent_dim, event_rank=1, dtype=policy,
                               name=f"step{k}_actnorm_in"),
          conv1x1.InvertibleConv1x1Layer(latent_dim, event_rank=1,
                                         dtype=policy, name=f"step{k}_linear"),
          coupling.CouplingLayer(split="continuous", order="up",
                                 name=f"step{k}_coupling_continuous_up",
                                 **common),
          coupling.CouplingLayer(split="continuous", order="down",
                                 name=f"step{k}_coupling_continuous_down",
                                 **common),
          actnorm.ActNormLayer(latent_dim, event_rank=1, dtype=policy,
                               name=f"step{k}_actnorm_mid"),
          coupling.CouplingLayer(split="alternate", order="up",
                                 name=f"step{k}_coupling_alternate_up",
                                 **common),
          coupling.CouplingLayer(split="alternate", order="down",
                                 name=f"step{k}_coupling_alternate_down",
                                 **common),
      ]])
    self.built = True

  def get_config(self):
    config = super().get_config()
    config.update(latent_dim=self.latent_dim, num_steps=self.num_steps,
                  hidden_units=self.hidden_units, alpha=self.alpha)
    return config

  @property
  def bijector(self):
    return base.FlowChain([piece.bijector for step in self.steps
                           for piece in step], forward_min_event_ndims=1,
                          name=self.name)

  def log_prob(self, z):
    """log p(z), [N]."""
    epsilon, log_det = self.bijector.forward_and_log_det(z)
    return standard_normal_log_prob(epsilon) + log_det

  def sample(self, num_samples, seed, temperature=1.0):
    """z = g^-1(epsilon), epsilon ~ N(0, temperature^2 I); seed: int32 [2]."""
    epsilon = temperature * tf.random.stateless_normal(
        [num_samples, self.latent_dim], seed=seed, dtype=self.variable_dtype)
    return self.bijector.inverse(epsilon)
