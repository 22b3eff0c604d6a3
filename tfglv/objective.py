"""The objective: per-image bounds in bits/dim (DESIGN section 1).

For an image x (dequantised, see `tfglv.quantization`) and k posterior
samples z_i ~ q(z|x), the model gives, in nats,

    nll_i = -log p(x|z_i)                (the flow's continuous density)
    kl_i  = log q(z_i|x) - log p(z_i)

and the dequantisation term D log(n_bins / 2) turns nll_i into a bound on
the discrete -log P(x_bins | z_i). With elbo_i = -(nll_i + kl_i):

    loss    = -mean_i elbo_i             the k-sample negative ELBO
    iw_loss = -log mean_i exp(elbo_i)    importance weighted, <= loss
    nll     = mean_i nll_i,  kl = mean_i kl_i   (loss = nll + kl)

each divided by D ln 2, so in bits per dimension. "glow" has an exact
likelihood: one row (k = 1) and kl = 0.
"""

import math
from typing import Dict

import tensorflow as tf

from tfglv import quantization


def bits_per_dim_bounds(nll_k: tf.Tensor, kl_k: tf.Tensor, num_dims: int,
                        n_bits: int) -> Dict[str, tf.Tensor]:
  """[k, N] continuous nll_i and kl_i in nats -> the [N] bounds in bits/dim.

  Returns:
    {"loss", "nll", "kl", "iw_loss"}, as in the module docstring.
  """
  nll_k = nll_k + quantization.dequantization_log_det(num_dims, n_bits)
  neg_elbo_k = nll_k + kl_k  # [k, N]
  to_bpd = 1.0 / (num_dims * math.log(2.0))
  rows = neg_elbo_k.shape[0]
  iw = -(tf.reduce_logsumexp(-neg_elbo_k, axis=0) - math.log(rows))
  return {
      "loss": tf.reduce_mean(neg_elbo_k, axis=0) * to_bpd,
      "nll": tf.reduce_mean(nll_k, axis=0) * to_bpd,
      "kl": tf.reduce_mean(kl_k, axis=0) * to_bpd,
      "iw_loss": iw * to_bpd,
  }
