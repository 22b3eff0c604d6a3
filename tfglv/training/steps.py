"""The distributed train and eval steps.

Train step, for a global batch of B images split over R replicas:

    loss = sum over the replica's images of loss_i (bits/dim) / B
    g    = all-reduce-sum over replicas of d loss / d theta

so `g` is the gradient of the mean loss over the global batch. Each
replica may process its share in `grad_accumulation` micro-batches, whose
gradients add up to the same `g`. Then, identically on every replica:
`|g|` is measured; a step whose loss or `|g|` is not finite is skipped (the
optimizer is not applied, a saved counter goes up) by a `tf.cond` inside
the compiled step; otherwise `g` is optionally clipped to a global norm and
AdamW is applied.

Randomness is stateless: the seed of a step is a function of
(train.seed, step, replica id, micro-batch), so replicas draw different
dequantisation and posterior noise and a resumed run draws the same noise
as an uninterrupted one.
"""

from typing import Dict
import warnings

import tensorflow as tf

# Iterating a distributed dataset inside tf.function reads its options in
# graph mode, which TF 2.21 warns about on every trace; it is harmless here.
warnings.filterwarnings("ignore", message="To make it possible to preserve "
                        "tf.data options", category=UserWarning)

TRAIN_METRICS = ("loss", "nll", "kl", "gradient_norm", "finite")
EVAL_SUMS = ("loss", "iw_loss", "nll", "kl", "count")


def step_seed(seed: int, step, replica_id, micro_batch: int = 0) -> tf.Tensor:
  """int32 [2] stateless seed of one (step, replica, micro-batch)."""
  base = tf.stack([tf.constant(seed % (2**31 - 1), tf.int32),
                   tf.cast(step, tf.int32)])
  base = tf.random.experimental.stateless_fold_in(base, replica_id)
  return tf.random.experimental.stateless_fold_in(base, micro_batch)


def _all_reduce_flat(context, scalars, tensors):
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


class TrainStep:
  """Builds the compiled train step of `model` under `strategy`.

  Call `train_step(iterator)` with a distributed iterator of batches
  {"image": uint8 [B / R, H, W, C], ...}. It advances `step` by one and
  returns a dict of floats: "loss", "nll", "kl" (means over the global
  batch, bits/dim), "gradient_norm" (before clipping), "finite" (1.0 if the
  update was applied, 0.0 if skipped).
  """

  def __init__(self, model, optimizer, strategy, train_config,
               global_batch_size: int, step: tf.Variable,
               skipped_steps: tf.Variable):
    self.model = model
    self.optimizer = optimizer
    self.strategy = strategy
    self.global_batch_size = global_batch_size
    self.step = step
    self.skipped_steps = skipped_steps
    self.seed = train_config.seed
    self.accumulation = train_config.grad_accumulation
    self.clip_norm = train_config.grad_clip_norm
    self.num_posterior_samples = train_config.num_posterior_samples
    self.variables = list(model.trainable_variables)
    self.train_step = tf.function(self._train_step)

  def _replica_gradients(self, images, step):
    context = tf.distribute.get_replica_context()
    replica_id = context.replica_id_in_sync_group
    micro_batches = (tf.split(images, self.accumulation)
                     if self.accumulation > 1 else [images])
    grads = None
    sums = {"loss": 0.0, "nll": 0.0, "kl": 0.0}
    # Unrolled rather than a tf.while_loop: synchronised batch norm
    # all-reduces inside the model, which a replica may not do in a loop.
    for index, micro_batch in enumerate(micro_batches):
      seed = step_seed(self.seed, step, replica_id, index)
      with tf.GradientTape() as tape:
        losses = self.model.compute_losses(
            micro_batch, seed, training=True,
            num_samples=self.num_posterior_samples)
        loss = tf.reduce_sum(losses["loss"]) / self.global_batch_size
      micro_grads = tape.gradient(loss, self.variables)
      micro_grads = [tf.zeros_like(v) if g is None else g
                     for g, v in zip(micro_grads, self.variables)]
      grads = micro_grads if grads is None else [
          a + b for a, b in zip(grads, micro_grads)]
      for key in sums:
        sums[key] += tf.reduce_sum(losses[key]) / self.global_batch_size
    metrics, grads = _all_reduce_flat(
        context, [sums["loss"], sums["nll"], sums["kl"]], grads)
    metrics = dict(zip(("loss", "nll", "kl"), metrics))
    gradient_norm = tf.linalg.global_norm(grads)
    finite = tf.logical_and(tf.math.is_finite(metrics["loss"]),
                            tf.math.is_finite(gradient_norm))
    if self.clip_norm > 0:
      grads, _ = tf.clip_by_global_norm(grads, self.clip_norm,
                                        use_norm=gradient_norm)
    metrics["gradient_norm"] = gradient_norm
    return grads, finite, metrics

  def _apply(self, grads):
    self.optimizer.apply(grads, self.variables)

  def _train_step(self, iterator) -> Dict[str, tf.Tensor]:
    batch = next(iterator)
    step = self.step.read_value()
    grads, finite, metrics = self.strategy.run(
        self._replica_gradients, args=(batch["image"], step))
    # Every replica computed the same all-reduced values; take the first.
    local = self.strategy.experimental_local_results
    finite = local(finite)[0]
    metrics = {key: local(value)[0] for key, value in metrics.items()}

    def apply():
      self.strategy.run(self._apply, args=(grads,))
      return tf.constant(0, tf.int64)

    def skip():
      return tf.constant(1, tf.int64)

    # The cond sits in cross-replica context: a replica-context cond may not
    # contain the optimizer's merge_call.
    skipped = tf.cond(finite, apply, skip)
    self.skipped_steps.assign_add(skipped)
    self.step.assign_add(1)
    metrics["finite"] = tf.cast(finite, tf.float32)
    return metrics


class EvalStep:
  """Builds `evaluate(dataset)`: summed per-image losses over a dataset.

  `evaluate` takes a distributed dataset of batches (the last one may be
  partial) and returns float64 sums over all its images of "loss"
  (`num_posterior_samples`-sample negative ELBO), "iw_loss", "nll", "kl",
  each in bits/dim, and "count", the number of images.
  """

  def __init__(self, model, strategy, num_posterior_samples: int, seed: int):
    self.model = model
    self.strategy = strategy
    self.num_posterior_samples = num_posterior_samples
    self.seed = seed
    self.evaluate = tf.function(self._evaluate)

  def _replica_sums(self, images, batch_index):
    replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
    seed = step_seed(self.seed + 1, batch_index, replica_id)
    count = tf.shape(images)[0]
    keys = [key for key in EVAL_SUMS if key != "count"]

    def compute():
      losses = self.model.compute_losses(
          images, seed, training=False,
          num_samples=self.num_posterior_samples)
      return {key: tf.reduce_sum(tf.cast(losses[key], tf.float64))
              for key in keys}

    def nothing():
      return {key: tf.constant(0.0, tf.float64) for key in keys}

    # When the test split does not fill the last global batch, some replicas
    # receive an empty one, which the encoder's convolutions reject.
    sums = tf.cond(count > 0, compute, nothing)
    sums["count"] = tf.cast(count, tf.float64)
    return sums

  def _evaluate(self, dataset) -> Dict[str, tf.Tensor]:
    totals = {key: tf.constant(0.0, tf.float64) for key in EVAL_SUMS}
    batch_index = tf.constant(0, tf.int64)
    for batch in dataset:
      sums = self.strategy.run(self._replica_sums,
                               args=(batch["image"], batch_index))
      # Rebinding the whole dict keeps it a loop variable for AutoGraph.
      totals = {key: totals[key] + self.strategy.reduce(
          tf.distribute.ReduceOp.SUM, sums[key], axis=None)
                for key in EVAL_SUMS}
      batch_index += 1
    return totals


def average_losses(totals: Dict[str, tf.Tensor]) -> Dict[str, float]:
  """`EvalStep.evaluate`'s sums as means over images, in bits/dim.

  "bpd" (the k-sample negative ELBO), "iw_bpd", "nll", "kl", and
  "num_images"; ValueError if there were no images.
  """
  count = float(totals["count"].numpy())
  if count == 0:
    raise ValueError("The test split produced no images to evaluate.")
  return {"bpd": float(totals["loss"].numpy()) / count,
          "iw_bpd": float(totals["iw_loss"].numpy()) / count,
          "nll": float(totals["nll"].numpy()) / count,
          "kl": float(totals["kl"].numpy()) / count,
          "num_images": count}
