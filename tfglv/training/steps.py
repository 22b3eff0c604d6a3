"""The distributed train and eval steps of the trainer.

`TrainStep` reads one global batch and makes one update, `EvalStep` sums
the losses over a dataset; the math of both (the loss and its gradient over
replicas, the non-finite skip, clipping, the stateless noise seeds) is
`tfglv.update_step`'s, which Keras `fit` shares.
"""

from typing import Dict
import warnings

import tensorflow as tf

from tfglv import update_step

# Iterating a distributed dataset inside tf.function reads its options in
# graph mode, which TF 2.21 warns about on every trace; it is harmless here.
warnings.filterwarnings("ignore", message="To make it possible to preserve "
                        "tf.data options", category=UserWarning)

TRAIN_METRICS = ("loss", "nll", "kl", "gradient_norm", "finite")
EVAL_SUMS = update_step.LOSS_SUMS + ("count",)
step_seed = update_step.step_seed  # Re-exported.


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
    return update_step.replica_gradients(
        self.model, images, step, self.variables, seed=self.seed,
        global_batch_size=self.global_batch_size,
        accumulation=self.accumulation, clip_norm=self.clip_norm,
        num_samples=self.num_posterior_samples)

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
    skipped = update_step.apply_or_skip(self.strategy, finite, self._apply,
                                        (grads,))
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
    return update_step.replica_loss_sums(self.model, images, seed,
                                         self.num_posterior_samples)

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
