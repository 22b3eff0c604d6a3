"""Knobs against posterior collapse: free bits and KL warm-up (issue 13).

Both change only what the optimizer differentiates. Every reported figure
(the loss, bpd, nll and kl of the logs, TensorBoard, Keras fit, evaluation
and exports) stays the true negative ELBO: `GLVAE.compute_losses` is the
same, and `tfglv.update_step` reports its terms, not the objective below.

The training objective of one update, in bits/dim, over a global batch of
B images with per-image terms nll_i and kl_i (`compute_losses`):

    J = mean_i nll_i + beta(t) * sum_g max(lambda_g, KL_g)

* KL warm-up, `train.kl_warmup_steps` = N > 0: beta(t) = min(1, (t + 1) / N)
  for update t counted from 0 (the trainer's `step` before the update;
  Keras fit: `optimizer.iterations`, which a skipped update does not
  advance). The first update weighs the KL term by 1/N, update N - 1 and
  later ones by 1. N = 0: beta = 1.
* Free bits (Kingma et al. 2016, "Improved Variational Inference with
  Inverse Autoregressive Flow", section "free bits"), `train.free_bits` =
  lambda > 0 bits per z dimension: the d_z dimensions of z form
  G = `train.free_bits_groups` contiguous groups of d_z / G (G = d_z: one
  per dimension); group g's budget is lambda_g = lambda * d_z / G bits per
  image, and KL_g is its KL term averaged over the batch's images (and
  posterior samples). A group under its budget adds the constant lambda_g:
  no gradient reaches it. Without free bits the KL term is mean_i kl_i.

The KL of a group. p(z) is a flow, so the one-sample estimate
log q(z|x) - log p(z) does not split by dimension on its own. With the
diagonal Gaussian q(z|x) = prod_d q_d(z_d|x), an exact split is

    kl = sum_d [log q_d(z_d|x) - log N(z_d; 0, 1)]     one term per dimension
       + [log N(z; 0, I) - log p(z)]                  the rest: how p(z)
                                                      differs from N(0, I)

(`tfglv.global_code`, returned by `compute_losses` as "kl_parts"). Each
dimension's term goes to its group and the rest is shared equally among the
G groups, so the group terms sum to kl exactly (`group_kl`).

Distribution. KL_g is the mean over the global batch: each replica sums its
images' group terms, one all-reduce of those sums (values only, no
gradient) gives the global means, so every replica agrees on which groups
are over budget; each then differentiates its own images' share of those
groups, and the gradients summed over replicas are exactly dJ. With
`train.grad_accumulation` = A > 1 this holds per micro-batch: micro-batch a
of every replica (B / A images in all) sets its own KL_g, and J is the mean
of the A micro-batches' objectives (for A = 1, exactly the J above).
"""

from typing import NamedTuple, Optional

import tensorflow as tf

from tfglv.configs import checks


class KLBudget(NamedTuple):
  """The knobs of one run, as `train.*` names them; see module docstring."""
  free_bits: float = 0.0  # lambda, bits per z dimension; 0: off.
  free_bits_groups: int = 1  # G, dividing d_z.
  kl_warmup_steps: int = 0  # N; 0: off.


def make(settings, latent_dim: int, prefix: str = "train.",
         variant: str = "") -> Optional[KLBudget]:
  """The budget of `settings` (a `TrainConfig` or anything with its three
  fields), or None when both knobs are off (the paper's objective).

  Raises ValueError naming the field and its allowed values
  (`checks.kl_budget_problem`); `latent_dim` is d_z (0: no z).
  """
  budget = KLBudget(settings.free_bits, settings.free_bits_groups,
                    settings.kl_warmup_steps)
  problem = checks.kl_budget_problem(*budget, latent_dim, prefix, variant)
  if problem:
    raise ValueError(problem)
  if budget.free_bits == 0 and budget.kl_warmup_steps == 0:
    return None
  return KLBudget(float(budget.free_bits), int(budget.free_bits_groups),
                  int(budget.kl_warmup_steps))


def warmup_weight(step, warmup_steps: int) -> tf.Tensor:
  """beta = min(1, (step + 1) / warmup_steps); 1 when warmup_steps is 0."""
  if warmup_steps <= 0:
    return tf.constant(1.0)
  progress = tf.cast(step, tf.float32) + 1.0
  return tf.minimum(1.0, progress / float(warmup_steps))


def group_kl(kl_parts: tf.Tensor, groups: int) -> tf.Tensor:
  """[N, d_z + 1] KL terms (per dimension, then the rest) -> [N, G] per
  group: each group's dimensions plus 1/G of the rest. Sums to kl."""
  latent_dim = kl_parts.shape[-1] - 1
  if groups < 1 or latent_dim % groups:
    raise ValueError(f"groups must divide d_z = {latent_dim}; got {groups}.")
  per_dimension, rest = tf.split(kl_parts, [latent_dim, 1], axis=-1)
  per_group = tf.reduce_sum(
      tf.reshape(per_dimension, [-1, groups, latent_dim // groups]), axis=-1)
  return per_group + rest / groups


def replica_objective(losses, budget: KLBudget, step, num_dims: int,
                      batch_size, context=None) -> tf.Tensor:
  """This replica's share of J over a global batch of `batch_size` images.

  Args:
    losses: this replica's `compute_losses` ("nll", "kl", "kl_parts";
      bits/dim, per image).
    budget: the knobs.
    step: the update's index t, from 0.
    num_dims: D = H * W * C, to put the free bits in bits/dim.
    batch_size: the images of all replicas in this (micro-)batch.
    context: the replica context (default: the current one).

  Returns:
    A scalar whose sum over replicas is J, and so is its gradient.
  """
  context = context or tf.distribute.get_replica_context()
  nll = tf.reduce_sum(losses["nll"]) / batch_size
  beta = warmup_weight(step, budget.kl_warmup_steps)
  if budget.free_bits <= 0:
    return nll + beta * tf.reduce_sum(losses["kl"]) / batch_size
  parts = losses["kl_parts"]
  share = tf.reduce_sum(group_kl(parts, budget.free_bits_groups),
                        axis=0) / batch_size  # [G]
  mean = tf.stop_gradient(share)
  replicas = context.num_replicas_in_sync
  if replicas > 1:
    mean = context.all_reduce(tf.distribute.ReduceOp.SUM, mean)
  group_size = (parts.shape[-1] - 1) // budget.free_bits_groups
  floor = budget.free_bits * group_size / num_dims  # lambda_g in bits/dim
  kl = tf.where(mean > floor, share, floor / replicas)
  return nll + beta * tf.reduce_sum(kl)
