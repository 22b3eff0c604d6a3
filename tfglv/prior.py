"""Flow prior p(z) over the global code (DESIGN section 3).

Base N(0, I) in d_z dimensions. Each step is a refined Glow step on vectors
(`GlowStepLayer(event_rank=1)`), in the z -> base direction:

    ActNorm -> invertible d_z x d_z linear (orthogonal init)
    -> coupling (continuous, up) -> coupling (continuous, down) -> ActNorm
    -> coupling (alternate, up) -> coupling (alternate, down)

with MLP coupling networks `Dense(H) - ELU - Dense(H) - ELU - Dense(d_z)`
(last layer zero-initialised). log p(z) = log N(g(z); 0, I) + log|det dg/dz|.

Layout. The steps' pieces are registered on the prior under flat names
(`step0_actnorm_in`, `step0_linear`, `step0_coupling_continuous_up`, ...),
which are the object paths of every saved checkpoint; the `GlowStepLayer`s
themselves live only in the list `steps`, which checkpoints do not follow.
"""

import math

import keras
import tensorflow as tf

from tfglv.flows import base
from tfglv.flows import glow_step
from tfglv.flows import tracking


def standard_normal_log_prob(x):
  """log N(x; 0, I) summed over all but the first axis."""
  axes = list(range(1, len(x.shape)))
  return -0.5 * tf.reduce_sum(tf.square(x) + math.log(2.0 * math.pi),
                              axis=axes)


@keras.saving.register_keras_serializable(package="tfglv")
class PriorFlowLayer(base.FlowLayer):
  """Owns the prior flow's layers; `bijector` maps z to its base variable.

  Args:
    latent_dim: d_z, even and >= 2.
    num_steps: Glow steps on z.
    hidden_units: width H of the coupling MLPs.
    alpha: the couplings' scale bound.
  """

  def __init__(self, latent_dim: int, num_steps: int = 2,
               hidden_units: int = 256, alpha: float = 1.0, **kwargs):
    super().__init__(**kwargs)
    if latent_dim < 2 or latent_dim % 2:
      raise ValueError(f"latent_dim must be an even integer >= 2; got "
                       f"{latent_dim}.")
    self.keep_arguments(latent_dim=latent_dim, num_steps=num_steps,
                        hidden_units=hidden_units, alpha=alpha)
    self.steps = []
    for k in range(num_steps):
      step = glow_step.GlowStepLayer(
          latent_dim, hidden_units, alpha=alpha, event_rank=1,
          name_prefix=f"step{k}_", dtype=self.dtype_policy, name=f"step{k}")
      for piece in step.pieces:
        tracking.register(self, piece)
      self.steps.append(step)
    self.built = True

  def make_bijector(self, *, initializing=False, cached=False):
    chains = [step.make_bijector(initializing=initializing, cached=cached)
              for step in self.steps]
    # One flat chain of the pieces: the log-dets add up in the order they
    # always have (a chain of step chains would round differently).
    return base.FlowChain([b for chain in chains for b in chain.bijectors],
                          forward_min_event_ndims=1, name=self.name)

  def log_prob(self, z, *, initializing=False, cached=False):
    """log p(z), [N]; the options as for `make_bijector`."""
    epsilon, log_det = self.make_bijector(
        initializing=initializing, cached=cached).forward_and_log_det(z)
    return standard_normal_log_prob(epsilon) + log_det

  def sample(self, num_samples, seed, temperature=1.0, *, cached=False):
    """z = g^-1(epsilon), epsilon ~ N(0, temperature^2 I); seed: int32 [2]."""
    epsilon = temperature * tf.random.stateless_normal(
        [num_samples, self.latent_dim], seed=seed, dtype=self.variable_dtype)
    return self.make_bijector(cached=cached).inverse(epsilon)
