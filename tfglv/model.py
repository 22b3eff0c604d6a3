"""The generative model: a VAE whose decoder is a z-conditioned flow.

    q(z|x): ResNet encoder -> diagonal Gaussian over z (d_z dims)
    p(z):   a small flow prior
    v = f(x; z): the conditional refined Glow (multi-scale), v ~ N(0, I)

Three variants (DESIGN section 8), one class:
  * "glvae": the paper's model; z enters every coupling.
  * "glow": the refined Glow alone (no encoder, no z); exact likelihood.
  * "glvae_prior_only": the flow is unconditional; z only sets the mean and
    scale of the Gaussian over v (Table 3 baseline). The returned v is
    standardised, v = (f(x) - mu(z)) / sigma(z), so that z and v decode and
    switch exactly as in the other variants.

Images are uint8. With `n_bins = 2**n_bits`, `x_bins = floor(x / 2**(8 -
n_bits))` is dequantised uniformly to `(x_bins + u) / n_bins` and mapped to
[-1, 1); the map's Jacobian enters the likelihood as `D * log(n_bins / 2)`
(DESIGN section 1). All losses are per image, in bits/dim.
"""

import math
from typing import Dict, NamedTuple, Optional

import keras
import numpy as np
import tensorflow as tf

from tfglv import configs
from tfglv import encoder as encoder_lib
from tfglv import prior as prior_lib
from tfglv.flows import actnorm
from tfglv.flows import base
from tfglv.flows import conv1x1
from tfglv.flows import multiscale
from tfglv.flows import tracking
from tfglv.layers import weight_norm


class LatentGaussian(keras.layers.Layer):
  """z -> per-channel mean and log-scale of each latent piece of v.

  Used by "glvae_prior_only". Zero-initialised, so it starts as N(0, I).
  """

  def __init__(self, latent_dim, piece_shapes, **kwargs):
    super().__init__(**kwargs)
    self.latent_dim = latent_dim
    self.piece_shapes = [tuple(s) for s in piece_shapes]
    self.projections = []
    for index, (_, _, c) in enumerate(self.piece_shapes):
      dense = keras.layers.Dense(2 * c, kernel_initializer="zeros",
                                 bias_initializer="zeros",
                                 name=f"piece{index}")
      dense.build((None, latent_dim))
      self.projections.append(tracking.register(self, dense))
    self.built = True

  def get_config(self):
    config = super().get_config()
    config.update(latent_dim=self.latent_dim, piece_shapes=self.piece_shapes)
    return config

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


class Encoding(NamedTuple):
  """What `GLVAE.encode` returns: the global code and the local code.

  Attributes:
    z: [N, d_z] posterior mean of q(z|x) ([N, 0] for "glow").
    z_log_variance: [N, d_z] log-variance of q(z|x).
    v: [N, H, W, C] local code v = f(x; z), so `decode(z, v) == x`.
  """
  z: tf.Tensor
  z_log_variance: tf.Tensor
  v: tf.Tensor


def as_seed(seed) -> tf.Tensor:
  """An int or an int tensor of shape [2] -> an int32 [2] stateless seed."""
  if isinstance(seed, (int, np.integer)):
    return tf.constant([int(seed) % (2**31 - 1), 0], dtype=tf.int32)
  seed = tf.convert_to_tensor(seed)
  if seed.shape.rank != 1 or seed.shape[0] != 2:
    raise ValueError(f"seed must be an int or an int tensor of shape [2]; "
                     f"got shape {seed.shape}.")
  return tf.cast(seed, tf.int32)


class GLVAE(keras.Model):
  """The model of the paper and its variants; see the module docstring.

  Example:
    config = tfglv.configs.get("tiny")
    model = tfglv.build_model(config)
    model.initialize(images)          # ActNorm data-dependent init, once
    z, _, v = model.encode(images)    # z [N, d_z], v [N, H, W, C]
    assert (model.decode(z, v) == images).all()
  """

  def __init__(self, config: configs.Config, **kwargs):
    kwargs.setdefault("name", f"tfglv_{config.model}")
    super().__init__(**kwargs)
    configs.validate(config)
    self.config = config
    decoder = config.decoder
    self.variant = config.model
    self.latent_dim = 0 if config.model == "glow" else config.latent_dim
    net_dtype = ("mixed_bfloat16" if decoder.compute_dtype == "bfloat16"
                 else None)
    condition_dim = config.latent_dim if config.model == "glvae" else 0
    self.encoder = None
    self.prior = None
    self.latent_gaussian = None
    if config.model != "glow":
      self.encoder = encoder_lib.Encoder(
          config.image_shape, config.encoder.channels,
          config.encoder.out_channels, config.latent_dim,
          final_init_stddev=config.encoder.final_init_stddev, name="encoder")
      self.prior = prior_lib.PriorFlowLayer(
          config.latent_dim, config.prior.num_steps,
          config.prior.hidden_units, name="prior")
    self.decoder = multiscale.MultiScaleFlowLayer(
        config.image_shape, decoder.num_steps, decoder.hidden_channels,
        num_prior_blocks=decoder.num_prior_blocks,
        condition_dim=condition_dim, transform=decoder.coupling,
        alpha=decoder.alpha, conv1x1_parameterization=decoder.conv1x1,
        net_dtype=net_dtype, name="decoder")
    if config.model == "glvae_prior_only":
      self.latent_gaussian = LatentGaussian(
          config.latent_dim, self.decoder.piece_shapes, name="latent_gaussian")
    self.num_dims = int(np.prod(config.image_shape))
    self.num_bins = 2 ** config.n_bits
    self.built = True

  def get_config(self):
    return {"config": configs.to_dict(self.config), "name": self.name}

  @classmethod
  def from_config(cls, config):
    return cls(configs.from_dict(config["config"]), name=config.get("name"))

  # ---------------------------------------------------------------- layout
  @property
  def decoder_bijector(self) -> base.FlowBijector:
    """The whole conditional decoder x -> v (`forward(x, z=z)`)."""
    flow = self.decoder.bijector
    if self.latent_gaussian is None:
      return flow
    return base.FlowChain(
        [flow, StandardizeLatent(self.latent_gaussian, self.decoder)],
        name="decoder")

  def _layers_of(self, kind):
    return [l for l in self._flatten_layers(include_self=False, recursive=True)
            if isinstance(l, kind)]

  @property
  def actnorm_layers(self):
    return self._layers_of(actnorm.ActNormLayer)

  @property
  def conv1x1_layers(self):
    return self._layers_of(conv1x1.InvertibleConv1x1Layer)

  # ------------------------------------------------------------- data maps
  def _check_images(self, images) -> tf.Tensor:
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.uint8:
      raise ValueError(f"images must be uint8 [N, H, W, C] in [0, 255]; got "
                       f"dtype {images.dtype.name}.")
    expected = self.config.image_shape
    if images.shape.rank != 4:
      raise ValueError(f"images must have rank 4 [N, H, W, C] with "
                       f"H, W, C = {expected}; got shape {images.shape}.")
    if any(s is not None and s != e
           for s, e in zip(images.shape[1:], expected)):
      raise ValueError(f"images must have shape [N, {expected[0]}, "
                       f"{expected[1]}, {expected[2]}] for config "
                       f"{self.config.name!r}; got {images.shape}.")
    if images.shape[0] == 0:
      # Keras convolutions mis-shape an empty batch instead of passing it on.
      raise ValueError("images must hold at least one image (N >= 1); got "
                       "an empty batch.")
    return images

  def _bins(self, images):
    shift = 8 - self.config.n_bits
    return tf.cast(tf.bitwise.right_shift(images, shift), tf.float32)

  def _to_flow_range(self, x_bins, noise):
    return (x_bins + noise) * (2.0 / self.num_bins) - 1.0

  def to_images(self, x) -> tf.Tensor:
    """Continuous x in [-1, 1) -> uint8 images on the n_bits grid."""
    bins = tf.floor((tf.cast(x, tf.float32) + 1.0) * (self.num_bins / 2.0))
    bins = tf.clip_by_value(bins, 0.0, self.num_bins - 1.0)
    return tf.cast(bins, tf.uint8) * tf.constant(2 ** (8 - self.config.n_bits),
                                                 tf.uint8)

  @property
  def nats_per_bit_dim(self) -> float:
    """Nats per image in one bit/dim, D ln 2: the loss's unit conversion."""
    return self.num_dims * math.log(2.0)

  @property
  def _dequantization_log_det(self):
    # -log P(x_bins) = -log p(x) + D log(n_bins / 2) for x in [-1, 1).
    return self.num_dims * math.log(self.num_bins / 2.0)

  # ------------------------------------------------------------ objective
  def compute_losses(self, images, seed, training: bool = False,
                     num_samples: int = 1) -> Dict[str, tf.Tensor]:
    """Per-image losses in bits/dim, from `num_samples` posterior samples.

    Args:
      images: uint8 [N, H, W, C].
      seed: int or int32 [2]; drives dequantisation and posterior noise.
      training: batch-norm mode of the encoder.
      num_samples: k, posterior samples per image.

    Returns:
      dict of [N] float32 tensors: "loss" (negative ELBO averaged over k),
      "nll" (E_q[-log p(x|z)]), "kl" (E_q[log q(z|x) - log p(z)]),
      "iw_loss" (-log mean_k exp(elbo_k)); all in bits/dim.
    """
    if num_samples < 1:
      raise ValueError(f"num_samples must be >= 1; got {num_samples}.")
    images = self._check_images(images)
    seed = as_seed(seed)
    dequant_seed, posterior_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2))
    x_bins = self._bins(images)
    noise = tf.random.stateless_uniform(tf.shape(x_bins), dequant_seed)
    x = self._to_flow_range(x_bins, noise)
    nll_k, kl_k = self._nll_and_kl(x, posterior_seed, training, num_samples)
    nll_k = nll_k + self._dequantization_log_det
    neg_elbo_k = nll_k + kl_k  # [k, N]
    to_bpd = 1.0 / (self.num_dims * math.log(2.0))
    # "glow" has an exact likelihood: one row whatever num_samples is.
    rows = neg_elbo_k.shape[0]
    iw = -(tf.reduce_logsumexp(-neg_elbo_k, axis=0) - math.log(rows))
    return {
        "loss": tf.reduce_mean(neg_elbo_k, axis=0) * to_bpd,
        "nll": tf.reduce_mean(nll_k, axis=0) * to_bpd,
        "kl": tf.reduce_mean(kl_k, axis=0) * to_bpd,
        "iw_loss": iw * to_bpd,
    }

  def _nll_and_kl(self, x, seed, training, num_samples):
    """[k, N] -log p(x|z) (continuous) and log q(z|x) - log p(z), in nats."""
    batch = tf.shape(x)[0]
    if self.variant == "glow":
      v, log_det = self.decoder_bijector.forward_and_log_det(x)
      nll = -(prior_lib.standard_normal_log_prob(v) + log_det)
      return nll[None], tf.zeros_like(nll)[None]
    mean, log_variance = self.encoder(x, training=training)
    epsilon = tf.random.stateless_normal(
        tf.stack([num_samples, batch, self.latent_dim]), seed)
    z = mean[None] + tf.exp(0.5 * log_variance)[None] * epsilon
    log_q = -0.5 * tf.reduce_sum(
        log_variance[None] + tf.square(epsilon) + math.log(2 * math.pi),
        axis=-1)
    z_flat = tf.reshape(z, [-1, self.latent_dim])
    log_p_z = tf.reshape(self.prior.log_prob(z_flat), [num_samples, batch])
    if self.variant == "glvae":
      x_tiled = tf.tile(x, [num_samples, 1, 1, 1]) if num_samples > 1 else x
      v, log_det = self.decoder.bijector.forward_and_log_det(x_tiled, z=z_flat)
      log_px = prior_lib.standard_normal_log_prob(v) + log_det
    else:  # prior-only: the flow does not see z; run it once.
      v, log_det = self.decoder.bijector.forward_and_log_det(x)
      standardize = StandardizeLatent(self.latent_gaussian, self.decoder)
      v_tiled = tf.tile(v, [num_samples, 1, 1, 1]) if num_samples > 1 else v
      v_std, log_det_std = standardize.forward_and_log_det(v_tiled, z=z_flat)
      log_px = (prior_lib.standard_normal_log_prob(v_std) + log_det_std +
                tf.tile(log_det, [num_samples]))
    nll = -tf.reshape(log_px, [num_samples, batch])
    return nll, log_q - log_p_z

  def bits_per_dim(self, images, num_samples: int = 5, seed=0) -> tf.Tensor:
    """Per-image k-sample negative ELBO in bits/dim ([N])."""
    return self.compute_losses(images, seed, training=False,
                               num_samples=num_samples)["loss"]

  def importance_weighted_bits_per_dim(self, images, num_samples: int = 5,
                                       seed=0) -> tf.Tensor:
    """Per-image -log mean_k exp(elbo_k) in bits/dim ([N]); tighter."""
    return self.compute_losses(images, seed, training=False,
                               num_samples=num_samples)["iw_loss"]

  # ----------------------------------------------------------- inference
  def posterior(self, images, training=False):
    """(mean, log_variance) of q(z|x) at the bin centres; [N, d_z] each."""
    images = self._check_images(images)
    x = self._to_flow_range(self._bins(images), 0.5)
    if self.encoder is None:
      empty = tf.zeros(tf.stack([tf.shape(images)[0], 0]))
      return empty, empty
    return self.encoder(x, training=training)

  def encode(self, images) -> Encoding:
    """uint8 images -> Encoding(z, z_log_variance, v).

    z is the posterior mean; v is computed from the bin centres, so
    `decode(z, v) == images`.
    """
    images = self._check_images(images)
    x = self._to_flow_range(self._bins(images), 0.5)
    z, z_log_variance = self.posterior(images)
    condition = {} if self.variant == "glow" else {"z": z}
    v, _ = self.decoder_bijector.forward_and_log_det(x, **condition)
    return Encoding(z, z_log_variance, v)

  def _check_latents(self, z, v):
    z = tf.convert_to_tensor(z, tf.float32)
    v = tf.convert_to_tensor(v, tf.float32)
    h, w, c = self.config.image_shape
    if v.shape.rank != 4 or any(
        s is not None and s != e for s, e in zip(v.shape[1:], (h, w, c))):
      raise ValueError(f"v must be float32 [N, {h}, {w}, {c}]; got shape "
                       f"{v.shape}.")
    if z.shape.rank != 2 or (z.shape[1] is not None and
                             z.shape[1] != self.latent_dim):
      raise ValueError(f"z must be float32 [N, {self.latent_dim}]; got shape "
                       f"{z.shape}.")
    if v.shape[0] == 0 or z.shape[0] == 0:
      raise ValueError("z and v must hold at least one latent (N >= 1); got "
                       "an empty batch.")
    if tf.executing_eagerly():
      # A NaN or inf would decode to arbitrary pixels. (Traced callers, such
      # as the exported signatures, check in their own graphs.)
      for name, value in (("z", z), ("v", v)):
        if not np.all(np.isfinite(value.numpy())):
          raise ValueError(f"{name} must be finite; it holds NaN or inf.")
    return z, v

  def decode(self, z, v):
    """(z [N, d_z], v [N, H, W, C]) -> uint8 images [N, H, W, C]."""
    z, v = self._check_latents(z, v)
    condition = {} if self.variant == "glow" else {"z": z}
    x, _ = self.decoder_bijector.inverse_and_log_det(v, **condition)
    return self.to_images(x)

  def sample_latents(self, num_samples: int, temperature: float = 1.0, seed=0):
    """z ~ p(z) at temperature 1 and v ~ N(0, temperature^2 I)."""
    _check_temperature(temperature)
    if num_samples < 1:
      raise ValueError(f"num_samples must be >= 1; got {num_samples}.")
    z_seed, v_seed = tf.unstack(
        tf.random.experimental.stateless_split(as_seed(seed), 2))
    if self.prior is None:
      z = tf.zeros([num_samples, 0])
    else:
      z = self.prior.sample(num_samples, z_seed)
    v = temperature * tf.random.stateless_normal(
        [num_samples, *self.config.image_shape], v_seed)
    return z, v

  def sample(self, num_samples: int, temperature: float = 1.0, seed=0):
    """uint8 samples [num_samples, H, W, C]; temperature scales v only."""
    z, v = self.sample_latents(num_samples, temperature, seed)
    return self.decode(z, v)

  def call(self, images, training=False):
    return self.encode(images)

  # --------------------------------------------------------------- state
  @property
  def is_initialized(self) -> bool:
    return (all(bool(l.initialized.numpy()) for l in self.actnorm_layers) and
            (self.encoder is None or self.encoder.head_initialized))

  @property
  def data_initialized_variables(self):
    """The variables `initialize` sets from data (ActNorm, encoder head)."""
    variables = [w for layer in self.actnorm_layers
                 for w in (layer.log_scale, layer.bias)]
    if self.encoder is not None and self.encoder.head.data_dependent:
      variables += [self.encoder.head.length, self.encoder.head.bias]
    return variables

  def initialize(self, images, seed=0) -> bool:
    """Data-dependent initialisation on one batch, run once: the encoder's
    weight-normalised head, then every ActNorm.

    Returns False (and does nothing) if already initialised, e.g. after a
    restore. Call it eagerly; under a distribution strategy call it in
    cross-replica context so every replica receives the same values.
    """
    if self.is_initialized:
      return False
    if self.encoder is not None:
      # The encoder's weight-normalised head first: every coupling starts
      # as the identity, so the ActNorm statistics below do not depend on z.
      images = self._check_images(images)
      self.encoder.initialize_head(
          self._to_flow_range(self._bins(images), 0.5))
    layers = self.actnorm_layers
    for layer in layers:
      layer.init_mode = True
    try:
      self.compute_losses(images, seed, training=False)
    finally:
      for layer in layers:
        layer.init_mode = False
    return True

  def set_inference_cache(self, enabled: bool = True):
    """Caches W^-1 and log|det W| of every 1x1 conv, and the kernel
    g v / ||v|| of every weight-normalised layer (for decode/export).

    Re-enable after any weight change; training must run with it disabled.
    """
    for layer in self.conv1x1_layers + self._layers_of(
        weight_norm.WeightNormLayer):
      if enabled:
        layer.refresh_cache()
      layer.use_cache = enabled


def _check_temperature(temperature):
  if isinstance(temperature, (int, float)) and not 0 < temperature < math.inf:
    raise ValueError(f"temperature must be > 0 and finite (typically "
                     f"0.7-1.0); got {temperature}.")


def build_model(config: configs.Config) -> GLVAE:
  """Builds the model of `config` with every variable created."""
  return GLVAE(config)
