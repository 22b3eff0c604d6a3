"""The generative model: a VAE whose decoder is a z-conditioned flow.

    q(z|x): ResNet encoder -> diagonal Gaussian over z (d_z dims)
    p(z):   a small flow prior
    v = f(x; z): the conditional refined Glow (multi-scale), v ~ N(0, I)

Four variants (DESIGN section 8), one class; what differs between them is
the global code (`tfglv.global_code`) and the decoder flow
(`tfglv.decoders`):
  * "glvae": the paper's model; z enters every coupling.
  * "glow": the refined Glow alone (no encoder, no z); exact likelihood.
  * "glvae_prior_only": the flow is unconditional; z only sets the mean and
    scale of the Gaussian over v (Table 3 baseline). The returned v is
    standardised, v = (f(x) - mu(z)) / sigma(z), so that z and v decode and
    switch exactly as in the other variants.
  * "glow_original": Glow's own flow (Kingma & Dhariwal, 2018; the paper's
    Table 1 baseline), no z.

Images are uint8; `tfglv.quantization` maps them to the flow's range
[-1, 1) and back, `tfglv.objective` turns the model's log-densities into
bounds in bits/dim, and `tfglv.latents` holds what is model-independent
about the codes z and v (their type, seeded noise, interpolation, checks).
"""

import math
from typing import Dict

import keras
import numpy as np
import tensorflow as tf

from tfglv import _compat
from tfglv import compiled
from tfglv import configs
from tfglv import decoders
from tfglv import dequantization
from tfglv import global_code
from tfglv import keras_fit
from tfglv import keras_saving
from tfglv import latents
from tfglv import objective
from tfglv import quantization
from tfglv.flows import actnorm
from tfglv.flows import base
from tfglv.flows import conv1x1


# Re-exported: `model_lib.Encoding`, `model_lib.as_seed`.
Encoding = latents.Encoding
as_seed = latents.as_seed


@keras.saving.register_keras_serializable(package="tfglv")
class GLVAE(keras_saving.SavingMixin, keras_fit.FitMixin,
            compiled.InferenceMixin, keras.Model):
  """The model of the paper and its variants; see the module docstring.

  Example:
    config = tfglv.configs.get("tiny")
    model = tfglv.build_model(config.model)
    model.initialize(images)          # ActNorm data-dependent init, once
    z, _, v = model.encode(images)    # z [N, d_z], v [N, H, W, C]
    assert (model.decode(z, v) == images).all()
    model.sample(16, temperature=0.7, seed=1)          # [16, H, W, C]
    model.switch(global_images, local_images)          # paper Fig. 1
    model.interpolate(x_1, x_2, [0, .5, 1], [0, 1])    # paper Fig. 5

  The exported signatures and the evaluation figures call these methods,
  compiled when called eagerly (`tfglv.compiled`). Keras's fit and saving
  work as on any Keras model (`tfglv.keras_fit`, `tfglv.keras_saving`).
  """

  def __init__(self, config: configs.ModelConfig, **kwargs):
    if isinstance(config, configs.Config):  # A whole run's config.
      config = config.model
    kwargs.setdefault("name", f"tfglv_{config.variant}")
    super().__init__(**kwargs)
    self.config = configs.validate_model(config)
    self.variant = config.variant
    # Not a layer: the variant's math around the layers assigned below.
    self.global_code = global_code.make(config)
    self.latent_dim = self.global_code.latent_dim
    # Attribute order is the checkpoint's and the trainable variables'.
    self.encoder = self.global_code.encoder
    self.prior = self.global_code.prior
    self.decoder = decoders.build(config, self.global_code.condition_dim)
    self.latent_gaussian = self.global_code.attach(self.decoder)
    self.dequantizer = dequantization.make(config)  # None: uniform noise.
    self.num_dims = int(np.prod(config.image_shape))
    self.num_bins = 2 ** config.n_bits
    self.built = True

  # ---------------------------------------------------------------- layout
  @property
  def decoder_bijector(self) -> base.FlowBijector:
    """The whole conditional decoder x -> v (`forward(x, z=z)`), training."""
    return self.make_decoder_bijector()

  def make_decoder_bijector(self, *, initializing: bool = False,
                            cached: bool = False) -> base.FlowBijector:
    """The decoder x -> v; options as `tfglv.flows.FlowLayer.make_bijector`."""
    return self.global_code.decoder_bijector(
        self.decoder.make_bijector(initializing=initializing, cached=cached))

  def _layers_of(self, kind):
    return [l for l in _compat.sublayers(self) if isinstance(l, kind)]

  @property
  def actnorm_layers(self):
    return self._layers_of(actnorm.ActNormLayer)

  @property
  def conv1x1_layers(self):
    return self._layers_of(conv1x1.InvertibleConv1x1Layer)

  # ---------------------------------------- data maps (tfglv.quantization)
  def _check_images(self, images) -> tf.Tensor:
    return quantization.check_images(images, self.config.image_shape)

  def _bins(self, images):
    return quantization.bins(images, self.config.n_bits)

  def _to_flow_range(self, x_bins, noise):
    return quantization.to_flow_range(x_bins, noise, self.config.n_bits)

  def to_images(self, x) -> tf.Tensor:
    """Continuous x in [-1, 1) -> uint8 images on the n_bits grid."""
    return quantization.to_images(x, self.config.n_bits)

  @property
  def nats_per_bit_dim(self) -> float:
    """Nats per image in one bit/dim, D ln 2: the loss's unit conversion."""
    return self.num_dims * math.log(2.0)

  # ------------------------------------------------------------ objective
  @compiled.inference("images", "seed")
  def compute_losses(self, images, seed, training: bool = False,
                     num_samples: int = 1) -> Dict[str, tf.Tensor]:
    """Per-image bounds in bits/dim (`tfglv.objective`) from `num_samples`
    posterior samples.

    Args:
      images: uint8 [N, H, W, C].
      seed: int or int32 [2]; drives dequantisation and posterior noise.
      training: batch-norm mode of the encoder.
      num_samples: k, posterior samples per image.

    Returns:
      dict of [N] float32 tensors: "loss" (negative ELBO averaged over k),
      "nll" (E_q[-log p(x|z)]), "kl" (E_q[log q(z|x) - log p(z)]),
      "iw_loss" (-log mean_k exp(elbo_k)); all in bits/dim. And "kl_parts"
      [N, d_z + 1], kl split by z dimension (`tfglv.kl_budget`).
    """
    if num_samples < 1:
      raise ValueError(f"num_samples must be >= 1; got {num_samples}.")
    if self._inference_cache and training:
      raise ValueError(
          "compute_losses(training=True) needs the inference cache disabled: "
          "the cached W^-1, log|det W| and weight-normalised kernels are "
          "stale copies that pass no gradient. Call "
          "model.set_inference_cache(False) before training.")
    images = self._check_images(images)
    x, log_q, posterior_seed = self._dequantize(images, seed)
    nll_k, kl_k = self._nll_and_kl(x, posterior_seed, training, num_samples)
    return objective.bits_per_dim_bounds(nll_k, kl_k, self.num_dims,
                                         self.config.n_bits, log_q)

  def _dequantize(self, images, seed):
    """(x in [-1, 1) with noise, its log q(u|x) (None: uniform), posterior
    seed) from `seed` (`tfglv.dequantization`)."""
    dequant_seed, posterior_seed = tf.unstack(
        tf.random.experimental.stateless_split(as_seed(seed), 2))
    return (*dequantization.dequantize(
        self.dequantizer, self._bins(images), dequant_seed,
        self.config.n_bits, cached=self._inference_cache), posterior_seed)

  def _nll_and_kl(self, x, seed, training, num_samples, initializing=False):
    """[k, N] -log p(x|z) (continuous), [k, N, d_z + 1] KL terms; nats.

    `initializing`: the flows' ActNorms initialise on this pass.
    """
    return self.global_code.nll_and_kl(
        self.decoder.make_bijector(initializing=initializing,
                                   cached=self._inference_cache),
        x, seed, training, num_samples,
        dict(initializing=initializing, cached=self._inference_cache))

  @compiled.inference("images", "seed")
  def bits_per_dim(self, images, num_samples: int = 5, seed=0) -> tf.Tensor:
    """Per-image k-sample negative ELBO in bits/dim ([N])."""
    return self.compute_losses(images, seed, training=False,
                               num_samples=num_samples)["loss"]

  @compiled.inference("images", "seed")
  def importance_weighted_bits_per_dim(self, images, num_samples: int = 5,
                                       seed=0) -> tf.Tensor:
    """Per-image -log mean_k exp(elbo_k) in bits/dim ([N]); tighter."""
    return self.compute_losses(images, seed, training=False,
                               num_samples=num_samples)["iw_loss"]

  # ----------------------------------------------------------- inference
  @compiled.inference("images")
  def posterior(self, images, training=False):
    """(mean, log_variance) of q(z|x) at the bin centres; [N, d_z] each."""
    images = self._check_images(images)
    x = self._to_flow_range(self._bins(images), 0.5)
    return self.global_code.posterior(x, training=training,
                                      cached=self._inference_cache)

  @compiled.inference("images")
  def encode(self, images) -> Encoding:
    """uint8 images -> Encoding(z, z_log_variance, v).

    z is the posterior mean; v is computed from the bin centres, so
    `decode(z, v) == images`.
    """
    images = self._check_images(images)
    x = self._to_flow_range(self._bins(images), 0.5)
    z, z_log_variance = self.posterior(images)
    decoder = self.make_decoder_bijector(cached=self._inference_cache)
    v, _ = decoder.forward_and_log_det(x, **self.global_code.condition(z))
    return Encoding(z, z_log_variance, v)

  @compiled.inference("z", "v")
  def decode(self, z, v):
    """(z [N, d_z], v [N, H, W, C]) -> uint8 images [N, H, W, C]."""
    z, v = latents.check_latents(z, v, self.config.image_shape,
                                 self.latent_dim)
    decoder = self.make_decoder_bijector(cached=self._inference_cache)
    x, _ = decoder.inverse_and_log_det(v, **self.global_code.condition(z))
    return self.to_images(x)

  @compiled.inference("z_noise", "v_noise", "temperature")
  def latents_from_noise(self, z_noise, v_noise, temperature=1.0):
    """Standard normal noise -> latents (z, v), deterministically.

    z = g^-1(z_noise) through the prior flow, at temperature 1 (z_noise
    itself for "glow"); v = temperature * v_noise.
    """
    latents.check_temperature(temperature)
    z = self.global_code.z_from_noise(
        tf.convert_to_tensor(z_noise, tf.float32), cached=self._inference_cache)
    return z, temperature * tf.convert_to_tensor(v_noise, tf.float32)

  @compiled.inference("num_samples", "temperature", "seed")
  def sample_latents(self, num_samples, temperature=1.0, seed=0):
    """z ~ p(z) at temperature 1 and v ~ N(0, temperature^2 I)."""
    latents.check_temperature(temperature)
    latents.check_num_samples(num_samples)
    noise = latents.draw_noise(seed, num_samples, self.latent_dim,
                               self.config.image_shape)
    return self.latents_from_noise(*noise, temperature)

  @compiled.inference("num_samples", "temperature", "seed")
  def sample(self, num_samples, temperature=1.0, seed=0):
    """uint8 samples [num_samples, H, W, C]; temperature scales v only.

    Every argument may be a tensor (the exported `sample_from_seed`).
    """
    return self.decode(*self.sample_latents(num_samples, temperature, seed))

  @compiled.inference("global_images", "local_images")
  def switch(self, global_images, local_images):
    """decode(z of global_images, v of local_images): uint8 [N, H, W, C].

    Each local image keeps its local code and takes the global code of its
    partner (paper Fig. 1).
    """
    z_global, _ = self.posterior(global_images)
    return self.decode(z_global, self.encode(local_images).v)

  @compiled.inference("images_start", "images_end", "z_fractions",
                      "v_fractions")
  def interpolate(self, images_start, images_end, z_fractions, v_fractions):
    """The paper's 2-D interpolation (Eq. 9, Fig. 5) of two image batches.

    Cell (n, i, j) of the uint8 [N, A, B, H, W, C] result decodes
    (1 - a_i) z_start + a_i z_end and (1 - b_j) v_start + b_j v_end, for a
    in z_fractions [A] and b in v_fractions [B] (`latents.interpolate`).
    """
    z, v = latents.interpolate(self.encode(images_start),
                               self.encode(images_end), z_fractions,
                               v_fractions)
    images = self.decode(tf.reshape(z, [-1, self.latent_dim]),
                         tf.reshape(v, [-1, *self.config.image_shape]))
    return tf.reshape(images, tf.concat([tf.shape(z)[:3],
                                         tf.shape(images)[1:]], 0))

  def call(self, images, training=False):
    return self.encode(images)

  # --------------------------------------------------------------- state
  @property
  def is_initialized(self) -> bool:
    return (all(bool(l.initialized.numpy()) for l in self.actnorm_layers) and
            self.global_code.initialized)

  @property
  def data_initialized_variables(self):
    """The variables `initialize` sets from data (ActNorm, encoder head)."""
    return [w for layer in self.actnorm_layers
            for w in (layer.log_scale, layer.bias)
           ] + self.global_code.data_initialized_variables

  def initialize(self, images, seed=0) -> bool:
    """Data-dependent initialisation on one batch, run once: the encoder's
    weight-normalised head, then every ActNorm.

    Returns False (and does nothing) if already initialised, e.g. after a
    restore. Call it eagerly; under a distribution strategy call it in
    cross-replica context so every replica receives the same values.
    """
    if self.is_initialized:
      return False
    images = self._check_images(images)
    # The global code's layers first (the encoder's weight-normalised head).
    self.global_code.initialize(self._to_flow_range(self._bins(images), 0.5))
    # Then one pass of the objective (eval mode, one posterior sample) with
    # initialising bijectors: each ActNorm sets itself from its own input.
    x, _, posterior_seed = self._dequantize(images, seed)
    self._nll_and_kl(x, posterior_seed, training=False, num_samples=1,
                     initializing=True)
    return True


def build_model(config: configs.ModelConfig) -> GLVAE:
  """Builds the model of `config` (a ModelConfig, or a whole Config's
  `.model`) with every variable created."""
  return GLVAE(config)
