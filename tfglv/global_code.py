"""The global code z of each model variant, behind one interface.

A variant of the model (DESIGN section 8) differs from the others only in
its global code: whether there is a z, and how z reaches the local code v.

    variant             global code          z reaches v through
    "glow"              NoGlobalCode         (no z; the bound is exact)
    "glow_original"     NoGlobalCode         (no z; Glow's own flow)
    "glvae"             ConditioningCode     every coupling of the flow
    "glvae_prior_only"  GaussianCode         the mean and scale of N(v)

The model (`tfglv.model.GLVAE`) owns the layers as attributes (`encoder`,
`prior`, `latent_gaussian`; None where a code has none), so checkpoints
keep their names; a code object only holds references to them and does the
math that differs between variants. It is not a layer and holds no state.

    code = global_code.make(model_config)   # builds the encoder and prior
    model.encoder, model.prior = code.encoder, code.prior
    model.decoder = decoders.build(model_config, code.condition_dim)
    model.latent_gaussian = code.attach(model.decoder)
"""

import math

import tensorflow as tf

from tfglv import encoder as encoder_lib
from tfglv import latent_gaussian
from tfglv import prior as prior_lib
from tfglv.configs import schema
from tfglv.flows import base


class NoGlobalCode:
  """"glow", "glow_original": no z. The flow maps x to v unconditionally."""

  latent_dim = 0
  condition_dim = 0
  encoder = None
  prior = None
  latent_gaussian = None

  def __init__(self, model: schema.ModelConfig):
    del model

  def attach(self, decoder):
    """Builds the layers that need the decoder; returns latent_gaussian."""
    self._decoder = decoder
    return self.latent_gaussian

  # ------------------------------------------------------------- decoder
  def decoder_bijector(self, flow: base.FlowBijector) -> base.FlowBijector:
    """The whole decoder x -> v around the flow `flow`."""
    return flow

  def condition(self, z):
    """The conditioning keywords of `decoder_bijector(...)` for z."""
    del z
    return {}

  # ------------------------------------------------------------ inference
  def posterior(self, x, training=False, cached=False):
    """(mean, log_variance) of q(z|x), each [N, latent_dim]."""
    del training, cached
    empty = tf.zeros(tf.stack([tf.shape(x)[0], 0]))
    return empty, empty

  def z_from_noise(self, z_noise, cached=False):
    """z from standard normal noise through the prior flow."""
    del cached
    return z_noise

  # ------------------------------------------------------------ objective
  def nll_and_kl(self, flow, x, seed, training, num_samples, options):
    """[k, N] -log p(x|z), and log q(z|x) - log p(z) as [k, N, d_z + 1]
    terms that sum to it (`_sample_z`), in nats.

    `flow` is the decoder's flow bijector; `options` the bijector options
    (`initializing`, `cached`) of this pass.
    """
    del seed, training, num_samples, options
    v, log_det = flow.forward_and_log_det(x)
    nll = -(prior_lib.standard_normal_log_prob(v) + log_det)
    return nll[None], tf.zeros_like(nll)[None, :, None]

  # ---------------------------------------------------------------- init
  @property
  def initialized(self) -> bool:
    """Whether the data-dependent init of the code's layers has run."""
    return True

  @property
  def data_initialized_variables(self):
    return []

  def initialize(self, x):
    """Data-dependent init of the code's layers on x in [-1, 1)."""
    del x


class ConditioningCode(NoGlobalCode):
  """"glvae": encoder q(z|x), flow prior p(z); z conditions every coupling."""

  def __init__(self, model: schema.ModelConfig):
    super().__init__(model)
    self.latent_dim = model.latent_dim
    self.condition_dim = model.latent_dim
    self.encoder = encoder_lib.Encoder(
        model.image_shape, model.encoder.channels, model.encoder.out_channels,
        model.latent_dim, final_init_stddev=model.encoder.final_init_stddev,
        name="encoder")
    self.prior = prior_lib.PriorFlowLayer(
        model.latent_dim, model.prior.num_steps, model.prior.hidden_units,
        name="prior")

  def condition(self, z):
    return {"z": z}

  def posterior(self, x, training=False, cached=False):
    return self.encoder(x, training=training, cached=cached)

  def z_from_noise(self, z_noise, cached=False):
    return self.prior.make_bijector(cached=cached).inverse(z_noise)

  def _sample_z(self, x, seed, training, num_samples, options):
    """z ~ q(z|x), flattened [k * N, d_z], and log q(z|x) - log p(z) split
    exactly into [k, N, d_z + 1] terms: log q_d(z_d|x) - log N(z_d; 0, 1)
    per dimension d, then log N(z; 0, I) - log p(z) (`tfglv.kl_budget`)."""
    batch = tf.shape(x)[0]
    mean, log_variance = self.posterior(x, training=training,
                                        cached=options["cached"])
    epsilon = tf.random.stateless_normal(
        tf.stack([num_samples, batch, self.latent_dim]), seed)
    z = mean[None] + tf.exp(0.5 * log_variance)[None] * epsilon
    per_dimension = 0.5 * (tf.square(z) - tf.square(epsilon) -
                           log_variance[None])
    log_normal = -0.5 * tf.reduce_sum(
        tf.square(z) + math.log(2 * math.pi), axis=-1)
    z_flat = tf.reshape(z, [-1, self.latent_dim])
    log_p_z = tf.reshape(self.prior.log_prob(z_flat, **options),
                         [num_samples, batch])
    rest = (log_normal - log_p_z)[..., None]
    return z_flat, tf.concat([per_dimension, rest], axis=-1)

  def _log_px(self, flow, x, z_flat, num_samples):
    """[k * N] log p(x|z) for the k posterior samples of each image."""
    x_tiled = tf.tile(x, [num_samples, 1, 1, 1]) if num_samples > 1 else x
    v, log_det = flow.forward_and_log_det(x_tiled, z=z_flat)
    return prior_lib.standard_normal_log_prob(v) + log_det

  def nll_and_kl(self, flow, x, seed, training, num_samples, options):
    z_flat, kl = self._sample_z(x, seed, training, num_samples, options)
    log_px = self._log_px(flow, x, z_flat, num_samples)
    return -tf.reshape(log_px, [num_samples, tf.shape(x)[0]]), kl

  @property
  def initialized(self) -> bool:
    return self.encoder.head_initialized

  @property
  def data_initialized_variables(self):
    if not self.encoder.head.data_dependent:
      return []
    return [self.encoder.head.length, self.encoder.head.bias]

  def initialize(self, x):
    # Before the flows' ActNorms: every coupling starts as the identity, so
    # their statistics do not depend on z.
    self.encoder.initialize_head(x)


class GaussianCode(ConditioningCode):
  """"glvae_prior_only": the flow is unconditional; z sets N(v)'s mean and
  scale (`tfglv.latent_gaussian`), and v is returned standardised."""

  def __init__(self, model: schema.ModelConfig):
    super().__init__(model)
    self.condition_dim = 0

  def attach(self, decoder):
    self._decoder = decoder
    self.latent_gaussian = latent_gaussian.LatentGaussian(
        self.latent_dim, decoder.piece_shapes, name="latent_gaussian")
    return self.latent_gaussian

  def _standardize(self):
    return latent_gaussian.StandardizeLatent(self.latent_gaussian,
                                             self._decoder)

  def decoder_bijector(self, flow):
    return base.FlowChain([flow, self._standardize()], name="decoder")

  def _log_px(self, flow, x, z_flat, num_samples):
    # The flow does not see z: run it once, then standardise each sample.
    v, log_det = flow.forward_and_log_det(x)
    v_tiled = tf.tile(v, [num_samples, 1, 1, 1]) if num_samples > 1 else v
    v_std, log_det_std = self._standardize().forward_and_log_det(
        v_tiled, z=z_flat)
    return (prior_lib.standard_normal_log_prob(v_std) + log_det_std +
            tf.tile(log_det, [num_samples]))


_CODES = {
    "glow": NoGlobalCode,
    "glow_original": NoGlobalCode,
    "glvae": ConditioningCode,
    "glvae_prior_only": GaussianCode,
}
assert set(_CODES) == set(schema.MODEL_VARIANTS)


def make(model: schema.ModelConfig) -> NoGlobalCode:
  """The global code of `model.variant`, with its encoder and prior built."""
  if model.variant not in _CODES:
    raise ValueError(f"Unknown model variant {model.variant!r}; allowed: "
                     f"{', '.join(schema.MODEL_VARIANTS)}.")
  return _CODES[model.variant](model)
