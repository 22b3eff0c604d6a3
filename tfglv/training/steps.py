"""The distributed train and eval steps of the trainer.

`TrainStep` reads one global batch and makes one update, `EvalStep` sums
the losses over a dataset; the math of both (the loss and its gradient over
replicas, the non-finite skip, clipping, the stateless noise seeds) is
`tfglv.update_step`'s, which Keras `fit` shares.
"""

from typing import Dict, Tuple
import warnings

import tensorflow as tf

from tfglv import _compat
from tfglv import gc_pause
from tfglv import kl_budget
from tfglv import loss_scale
from tfglv import update_step
from tfglv.flows import shared

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

  Two compiled functions: the gradients (and whether they are finite),
  then the update. `update_step.apply_or_skip` runs between them, eagerly,
  so its skip is a Python branch: inside one graph it was a `tf.cond`
  whose branches capture every variable and gradient, which took a third
  of the tracing and a quarter of the first call of the full model.
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
    # Free bits / KL warm-up in the differentiated loss; None: off.
    self.kl_budget = kl_budget.make(train_config,
                                    getattr(model, "latent_dim", 0))
    self.variables = list(model.trainable_variables)
    # float16 networks: dynamic loss scale, state on the optimizer.
    self.loss_scale = loss_scale.for_model(model, optimizer, strategy)
    # No AutoGraph: the steps have no Python control flow on tensors, and
    # converting every function they call took a fifth of the tracing.
    self.function = tf.function(self._gradients, autograph=False)
    self.apply_function = tf.function(self._apply, autograph=False)
    self._traced_for, self._concrete = None, None

  def trace(self, iterator):
    """Traces the gradients' function for `iterator` (the first
    `train_step` does), and the update's when it runs on one replica;
    returns the first's concrete function. Outside the options of
    `train_step`: the calls of the shared flow blocks (`tfglv.flows.shared`)
    keep Grappler's defaults."""
    if iterator is not self._traced_for:
      with gc_pause.paused():  # Python builds the graphs.
        self._concrete = self.function.get_concrete_function(iterator)
        if self.strategy.num_replicas_in_sync == 1:
          grads = self._concrete.structured_outputs[0]
          self.apply_function.get_concrete_function(
              [tf.TensorSpec(g.shape, g.dtype) for g in grads])
      self._traced_for = iterator
    return self._concrete

  def train_step(self, iterator) -> Dict[str, tf.Tensor]:
    """One update from the next batch of `iterator` (class docstring)."""
    gradients = self.trace(iterator)
    with _compat.graph_rewrites_off(*self.rewrites_off()):
      grads, finite, metrics = gradients(iterator)
      skipped = update_step.apply_or_skip(
          self.strategy, finite, self.apply_function, (grads,),
          self.loss_scale)
    self.skipped_steps.assign_add(skipped)
    self.step.assign_add(1)
    metrics["finite"] = tf.cast(finite, tf.float32)
    return metrics

  def rewrites_off(self) -> Tuple[str, ...]:
    """The Grappler rewrites off for the step's own graphs.

    With the decoder's blocks in shared functions (optimised on their own,
    once per kind), what is left is the encoder, the prior, the glue and
    one update op per variable, where Grappler saved nothing measurable
    (full cifar10: 0.99x the steady step time) but took most of the first
    call (20 of its 40 CPU-seconds). Other models keep it.
    """
    decoder = getattr(self.model, "decoder", None)
    if decoder is not None and shared.tracing_count(decoder):
      return ("meta_optimizer",)
    return ()

  def _replica_gradients(self, images, step):
    return update_step.replica_gradients(
        self.model, images, step, self.variables, seed=self.seed,
        global_batch_size=self.global_batch_size,
        accumulation=self.accumulation, clip_norm=self.clip_norm,
        num_samples=self.num_posterior_samples, kl_budget=self.kl_budget,
        loss_scale=self.loss_scale)

  def _apply(self, grads):
    self.optimizer.apply(grads, self.variables)

  def _gradients(self, iterator):
    batch = next(iterator)
    step = self.step.read_value()
    grads, finite, metrics = self.strategy.run(
        self._replica_gradients, args=(batch["image"], step))
    # Every replica computed the same all-reduced values; take the first.
    local = self.strategy.experimental_local_results
    finite = local(finite)[0]
    metrics = {key: local(value)[0] for key, value in metrics.items()}
    return grads, finite, metrics


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
