"""One training update and one evaluation batch, under any strategy.

What the trainer's compiled step (`tfglv.training.steps`) and Keras `fit`
(`tfglv.keras_fit`) share, so the two update the model the same way.

Train update, for a global batch of B images split over R replicas:

    loss = sum over the replica's images of loss_i (bits/dim) / B
    g    = all-reduce-sum over replicas of d loss / d theta

so `g` is the gradient of the mean loss over the global batch
(`replica_gradients`, in replica context). Each replica may process its
share in `accumulation` micro-batches, whose gradients add up to the same
`g`. With free bits or a KL warm-up (`tfglv.kl_budget`) the differentiated
loss is that module's objective J instead; the reported loss, nll and kl
stay the negative ELBO's. Then, identically on every replica: `|g|` is
measured; a step whose loss or `|g|` is not finite is skipped
(`apply_or_skip`: no update, no optimizer state change) by a `tf.cond` in
cross-replica context; otherwise `g` is optionally clipped to a global norm
and applied.

Randomness is stateless: the seed of a step is a function of (seed, step,
replica id, micro-batch) (`step_seed`), so replicas draw different
dequantisation and posterior noise and a resumed run draws the same noise
as an uninterrupted one.
"""

from typing import Callable, Dict, Optional, Sequence

import tensorflow as tf

from tfglv import kl_budget as kl_budget_lib
from tfglv import loss_scale as loss_scale_lib

LOSS_SUMS = ("loss", "iw_loss", "nll", "kl")


def step_seed(seed: int, step, replica_id, micro_batch: int = 0) -> tf.Tensor:
  """int32 [2] stateless seed of one (step, replica, micro-batch)."""
  base = tf.stack([tf.constant(seed % (2**31 - 1), tf.int32),
                   tf.cast(step, tf.int32)])
  base = tf.random.experimental.stateless_fold_in(base, replica_id)
  return tf.random.experimental.stateless_fold_in(base, micro_batch)


def all_reduce_flat(context, scalars, tensors):
  """Sums `scalars` and `tensors` over replicas in one all-reduce.

  One flat vector instead of one reduction per variable keeps the step's
  graph small (it is traced once per replica) and the reduction cheap.
  """
  if context.num_replicas_in_sync == 1:
    # Nothing to sum: skip copying every gradient into one vector and back
    # (two passes over all gradients, ~1% of a full-size step).
    return list(scalars), list(tensors)
  shapes = [t.shape for t in tensors]
  flat = tf.concat([tf.stack(scalars)] +
                   [tf.reshape(tf.cast(t, tf.float32), [-1]) for t in tensors],
                   axis=0)
  flat = context.all_reduce(tf.distribute.ReduceOp.SUM, flat)
  sizes = [len(scalars)] + [s.num_elements() for s in shapes]
  pieces = tf.split(flat, sizes)
  summed_scalars = tf.unstack(pieces[0])
  summed = [tf.cast(tf.reshape(p, s), t.dtype)
            for p, s, t in zip(pieces[1:], shapes, tensors)]
  return summed_scalars, summed


def replica_gradients(model, images, step, variables: Sequence, *, seed: int,
                      global_batch_size, accumulation: int = 1,
                      clip_norm: float = 0.0, num_samples: int = 1,
                      kl_budget: Optional[kl_budget_lib.KLBudget] = None,
                      loss_scale: Optional[
                          loss_scale_lib.DynamicLossScale] = None):
  """One replica's share of a train update (call in replica context).

  Args:
    model: has `compute_losses(images, seed, training, num_samples)`.
    images: uint8 [B / R, H, W, C], this replica's share of the batch.
    step: the step whose noise to draw (`step_seed`).
    variables: the variables to differentiate.
    seed, accumulation, clip_norm, num_samples: `train.seed`,
      `train.grad_accumulation`, `train.grad_clip_norm` (0: none) and
      `train.num_posterior_samples`.
    global_batch_size: B, the images of all replicas together.
    kl_budget: free bits / KL warm-up (`kl_budget.make`); None: the plain
      negative ELBO is differentiated.
    loss_scale: float16 networks' loss scale (`loss_scale.for_model`), by
      which the loss is multiplied and the gradients divided; None: none.

  Returns:
    (gradients summed over replicas and clipped, whether the loss and the
    gradient norm are finite, {"loss", "nll", "kl": means over the global
    batch, "gradient_norm": before clipping}); the same on every replica.
  """
  context = tf.distribute.get_replica_context()
  replica_id = context.replica_id_in_sync_group
  micro_batches = (tf.split(images, accumulation) if accumulation > 1
                   else [images])
  grads = None
  sums = {"loss": 0.0, "nll": 0.0, "kl": 0.0}
  # Unrolled rather than a tf.while_loop: synchronised batch norm
  # all-reduces inside the model, which a replica may not do in a loop.
  for index, micro_batch in enumerate(micro_batches):
    micro_seed = step_seed(seed, step, replica_id, index)
    with tf.GradientTape() as tape:
      losses = model.compute_losses(micro_batch, micro_seed, training=True,
                                    num_samples=num_samples)
      if kl_budget is None:
        loss = tf.reduce_sum(losses["loss"]) / global_batch_size
      else:  # The mean over micro-batches of their objectives.
        loss = kl_budget_lib.replica_objective(
            losses, kl_budget, step, model.num_dims,
            global_batch_size / accumulation, context) / accumulation
    micro_grads = (tape.gradient(loss, variables) if loss_scale is None
                   else loss_scale.gradients(tape, loss, variables))
    micro_grads = [tf.zeros_like(v) if g is None else g
                   for g, v in zip(micro_grads, variables)]
    grads = micro_grads if grads is None else [
        a + b for a, b in zip(grads, micro_grads)]
    for key in sums:
      sums[key] += tf.reduce_sum(losses[key]) / global_batch_size
  metrics, grads = all_reduce_flat(
      context, [sums["loss"], sums["nll"], sums["kl"]], grads)
  metrics = dict(zip(("loss", "nll", "kl"), metrics))
  gradient_norm = tf.linalg.global_norm(grads)
  finite = tf.logical_and(tf.math.is_finite(metrics["loss"]),
                          tf.math.is_finite(gradient_norm))
  if clip_norm > 0:
    grads, _ = tf.clip_by_global_norm(grads, clip_norm,
                                      use_norm=gradient_norm)
  metrics["gradient_norm"] = gradient_norm
  return grads, finite, metrics


def apply_or_skip(strategy, finite, apply: Callable, args,
                  loss_scale=None) -> tf.Tensor:
  """Runs `apply(*args)` on every replica if `finite`; int64 1 if skipped.
  Then updates `loss_scale` (if any) from `finite`.

  Call in cross-replica context: a replica-context cond may not contain
  the optimizer's merge_call.
  """

  def run():
    strategy.run(apply, args=args)
    return tf.constant(0, tf.int64)

  def skip():
    return tf.constant(1, tf.int64)

  skipped = tf.cond(finite, run, skip)
  if loss_scale is not None:
    with tf.control_dependencies([skipped]):
      loss_scale.update(finite)
  return skipped


def replica_loss_sums(model, images, seed,
                      num_samples: int) -> Dict[str, tf.Tensor]:
  """float64 sums over this replica's images of "loss" (`num_samples`-sample
  negative ELBO), "iw_loss", "nll", "kl" (bits/dim), and "count"."""
  count = tf.shape(images)[0]

  def compute():
    losses = model.compute_losses(images, seed, training=False,
                                  num_samples=num_samples)
    return {key: tf.reduce_sum(tf.cast(losses[key], tf.float64))
            for key in LOSS_SUMS}

  def nothing():
    return {key: tf.constant(0.0, tf.float64) for key in LOSS_SUMS}

  # When a dataset does not fill the last global batch, some replicas
  # receive an empty one, which the encoder's convolutions reject.
  sums = tf.cond(count > 0, compute, nothing)
  sums["count"] = tf.cast(count, tf.float64)
  return sums
