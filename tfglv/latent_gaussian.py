"""The Gaussian over v of the "glvae_prior_only" baseline (paper Table 3).

In that variant the flow is unconditional and z reaches the image only
through the mean and scale of the Gaussian over each latent piece of v:

    v_std = (f(x) - mu(z)) * exp(-log_sigma(z)),   v_std ~ N(0, I)

`LatentGaussian` owns the z -> (mu, log_sigma) projections (zero-initialised,
so the variant starts as N(0, I)); `StandardizeLatent` is the bijector
v -> v_std, chained after the flow so that z and v decode and switch exactly
as in the other variants.
"""

import keras
import tensorflow as tf

from tfglv.flows import base
from tfglv.flows import multiscale
from tfglv.flows import tracking
from tfglv.layers import arguments


@keras.saving.register_keras_serializable(package="tfglv")
class LatentGaussian(arguments.KeepsArguments, keras.layers.Layer):
  """z -> per-channel mean and log-scale of each latent piece of v.

  Used by "glvae_prior_only". Zero-initialised, so it starts as N(0, I).
  """

  def __init__(self, latent_dim, piece_shapes, **kwargs):
    super().__init__(**kwargs)
    self.keep_arguments(latent_dim=latent_dim,
                        piece_shapes=[tuple(s) for s in piece_shapes])
    self.projections = []
    for index, (_, _, c) in enumerate(self.piece_shapes):
      dense = keras.layers.Dense(2 * c, kernel_initializer="zeros",
                                 bias_initializer="zeros",
                                 name=f"piece{index}")
      dense.build((None, latent_dim))
      self.projections.append(tracking.register(self, dense))
    self.built = True

  def pieces(self, z):
    """Lists of [N, h, w, c] means and log-scales, one per piece."""
    means, log_scales = [], []
    batch = tf.shape(z)[0]
    for dense, (h, w, c) in zip(self.projections, self.piece_shapes):
      params = dense(z)[:, None, None, :]
      params = tf.broadcast_to(params, tf.stack([batch, h, w, 2 * c]))
      means.append(params[..., :c])
      log_scales.append(params[..., c:])
    return means, log_scales


class StandardizeLatent(base.FlowBijector):
  """v -> (v - mu(z)) * exp(-log_sigma(z)), the prior-only Gaussian."""

  conditional = True

  def __init__(self, gaussian: LatentGaussian,
               flow: multiscale.MultiScaleFlowLayer, validate_args=False,
               name="standardize_latent"):
    parameters = dict(locals())
    self._gaussian = gaussian
    self._flow = flow
    super().__init__(forward_min_event_ndims=3, validate_args=validate_args,
                     parameters=parameters, name=name)

  def _params(self, z):
    means, log_scales = self._gaussian.pieces(z)
    return self._flow.assemble(means), self._flow.assemble(log_scales)

  def forward_and_log_det(self, v, z=None):
    mean, log_scale = self._params(z)
    return ((v - mean) * tf.exp(-log_scale),
            -tf.reduce_sum(log_scale, axis=[1, 2, 3]))

  def inverse_and_log_det(self, y, z=None):
    mean, log_scale = self._params(z)
    return (y * tf.exp(log_scale) + mean,
            tf.reduce_sum(log_scale, axis=[1, 2, 3]))
