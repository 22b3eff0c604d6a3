"""The objective: per-image bounds in bits/dim (DESIGN section 1).

For an image x_bins, its dequantised x = x_bins + u (`tfglv.quantization`,
`tfglv.dequantization`) and k posterior samples z_i ~ q(z|x), the model
gives, in nats,

    nll_i = -log p(x|z_i)                (the flow's continuous density)
    kl_i  = log q(z_i|x) - log p(z_i)

and the dequantisation terms turn nll_i into a bound on the discrete
-log P(x_bins | z_i): the Jacobian term D log(n_bins / 2) of the map to the
flow's range, plus log q(u|x) of the noise u, which is 0 for uniform noise
and the dequantizer's log-density for variational noise (one u per image,
shared by its k samples). In expectation over u ~ q(u|x) (Jensen),

    -log P(x_bins) <= E_q(u|x) E_q(z|x) [-log p(x_bins + u | z) + kl
                                         + log q(u|x)] + D log(n_bins / 2),

in training and in evaluation alike. With elbo_i = -(nll_i + kl_i):

    loss    = -mean_i elbo_i             the k-sample negative ELBO
    iw_loss = -log mean_i exp(elbo_i)    importance weighted, <= loss
    nll     = mean_i nll_i,  kl = mean_i kl_i   (loss = nll + kl)

each divided by D ln 2, so in bits per dimension; "nll" includes both
dequantisation terms. "glow" has an exact continuous likelihood: one row
(k = 1) and kl = 0. These are what every log, evaluation and export
reports; free bits and KL warm-up (`tfglv.kl_budget`) change only what
training differentiates.
"""

import math
from typing import Dict, Optional

import tensorflow as tf

from tfglv import quantization


def bits_per_dim_bounds(nll_k: tf.Tensor, kl_k: tf.Tensor, num_dims: int,
                        n_bits: int,
                        dequantization_log_q: Optional[tf.Tensor] = None
                        ) -> Dict[str, tf.Tensor]:
  """[k, N] continuous nll_i and kl_i in nats -> the [N] bounds in bits/dim.

  Args:
    nll_k: [k, N] -log p(x|z_i).
    kl_k: [k, N] kl_i, or [k, N, P] terms that sum to it (the global code's
      split, `tfglv.kl_budget`).
    num_dims, n_bits: D and the bits per value of the model.
    dequantization_log_q: [N] log q(u|x) of variational noise; None for
      uniform noise (0).

  Returns:
    {"loss", "nll", "kl", "iw_loss"}, as in the module docstring, and with
    [k, N, P] terms "kl_parts" ([N, P], their means over k in bits/dim).
  """
  to_bpd = 1.0 / (num_dims * math.log(2.0))
  kl_parts = None
  if kl_k.shape.rank == 3:
    kl_parts = tf.reduce_mean(kl_k, axis=0) * to_bpd
    kl_k = tf.reduce_sum(kl_k, axis=-1)
  nll_k = nll_k + quantization.dequantization_log_det(num_dims, n_bits)
  if dequantization_log_q is not None:
    nll_k = nll_k + dequantization_log_q[None]
  neg_elbo_k = nll_k + kl_k  # [k, N]
  rows = neg_elbo_k.shape[0]
  iw = -(tf.reduce_logsumexp(-neg_elbo_k, axis=0) - math.log(rows))
  bounds = {
      "loss": tf.reduce_mean(neg_elbo_k, axis=0) * to_bpd,
      "nll": tf.reduce_mean(nll_k, axis=0) * to_bpd,
      "kl": tf.reduce_mean(kl_k, axis=0) * to_bpd,
      "iw_loss": iw * to_bpd,
  }
  if kl_parts is not None:
    bounds["kl_parts"] = kl_parts
  return bounds
