"""Keras `fit` and `evaluate` on the model's negative ELBO.

    model = tfglv.build_model(config.model)
    model.compile(optimizer="adam")                  # no loss: the ELBO's
    model.fit(dataset, epochs=2, validation_data=test_dataset)
    model.evaluate(test_dataset)                     # {"loss", "bpd", ...}

`train_step` makes the trainer's update (`tfglv.update_step`): the negative
ELBO in bits/dim averaged over the global batch, its gradient summed over
replicas, a step whose loss or gradient norm is not finite skipped (no
update, no optimizer state change), optional clipping. `test_step` sums the
`eval_posterior_samples`-sample bound over the images, as the trainer's
evaluation does. Both report, as the trainer names them:

    loss, bpd   negative ELBO, bits/dim (the same number: `loss` is what
                Keras minimises, `bpd` what the paper reports)
    nll, kl     its two terms (nll + kl = bpd)
    skipped_steps   non-finite steps skipped in the epoch (0 in evaluate)

Training means are over the epoch's finite steps, evaluation means over
images. Keras cannot tell which way `bpd` should move: callbacks that
monitor it need `mode="min"` (`EarlyStopping(monitor="val_bpd",
mode="min")`).

The steps run without the Grappler rewrites that change floats
(`tfglv.compiled`), so a step's loss is exactly `compute_losses`'s. Noise
is stateless: training step t draws from (seed, t, replica), t the
optimizer's update count (so `BackupAndRestore` resumes the same noise),
evaluation batch i from (seed + 1, i, replica), each evaluation starting
at batch 0.

Batches are uint8 images [B, H, W, C], an `(images, labels)` tuple, or a
dict with an "image" entry (tfglv's own pipelines); labels and other entries
are ignored. Float images are refused with a message: their range ([0, 1],
[0, 255], [-1, 1]) cannot be guessed.

With several replicas, a dataset's batches must split evenly over them
(`drop_remainder=True`, a batch size divisible by the replicas).

If the model was not initialised, `fit` runs `initialize` on the first
batch of its data (a `tf.data.Dataset`, or an array's first `batch_size`
images) before the first step, in cross-replica context under the model's
strategy: every replica gets the same ActNorm values.

Under a strategy, the optimizer is applied in replica context. Keras
optimizers sum the replicas' gradients inside `apply`; the gradients here
are summed already, so replica 0 passes them and the others zeros. An
optimizer that says `sums_replica_gradients = False` (tfglv's AdamW) gets
them on every replica.
"""

from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from tfglv import compiled
from tfglv import kl_budget
from tfglv import loss_scale
from tfglv import quantization
from tfglv import update_step

_ELBO_METRICS = (("loss", "loss"), ("bpd", "loss"), ("nll", "nll"),
                 ("kl", "kl"))
_FLOAT_IMAGES = (
    "GLVAE.fit and evaluate take uint8 images [B, H, W, C] in [0, 255] (or "
    "(images, labels) tuples, or dicts with an \"image\" entry); got dtype "
    "{dtype}: convert with tf.cast(images, tf.uint8) from integers in "
    "[0, 255], or tf.cast(tf.round(images * 255), tf.uint8) from [0, 1].")


class FitSettings(NamedTuple):
  """What `compile` takes beside the optimizer; `train.*` fields alike."""
  seed: int = 0
  num_posterior_samples: int = 1
  eval_posterior_samples: int = 1
  grad_clip_norm: float = 0.0
  # train.free_bits, free_bits_groups, kl_warmup_steps.
  knobs: kl_budget.KLBudget = kl_budget.KLBudget()


def _check_settings(settings: FitSettings):
  if not isinstance(settings.seed, (int, np.integer)):
    raise ValueError(f"seed must be an int; got {settings.seed!r}.")
  for name in ("num_posterior_samples", "eval_posterior_samples"):
    value = getattr(settings, name)
    if not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"{name} must be an int >= 1; got {value!r}.")
  if not settings.grad_clip_norm >= 0:
    raise ValueError(f"grad_clip_norm must be >= 0 (0: no clipping); got "
                     f"{settings.grad_clip_norm!r}.")


class _StepCount(keras.metrics.Metric):
  """Counts steps that every replica sees (each replica counts them all, so
  the count is replica 0's, not a sum over replicas as `Sum`'s would be)."""

  def __init__(self, name):
    super().__init__(name=name)
    self.count = self.add_variable(shape=(), initializer="zeros",
                                   aggregation="only_first_replica",
                                   name="count")

  def update_state(self, steps):
    self.count.assign_add(tf.cast(steps, self.count.dtype))

  def result(self):
    return tf.identity(self.count)


class _FitState:
  """The metrics and the evaluation batch counter of a compiled model.

  A plain object: Keras's `.keras` and weights files and TF checkpoints do
  not follow it, so compiling adds nothing to what the model saves.
  """

  def __init__(self, settings: FitSettings, strategy, budget=None):
    self.settings = settings
    self.kl_budget = budget  # `kl_budget.make`'s; None: plain ELBO.
    with strategy.scope():
      self.trackers = {name: keras.metrics.Mean(name=name)
                       for name, _ in _ELBO_METRICS}
      self.trackers["skipped_steps"] = _StepCount("skipped_steps")
      self.test_batches = tf.Variable(
          0, dtype=tf.int64, trainable=False,
          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

  def results(self):
    return {name: tracker.result() for name, tracker in self.trackers.items()}


def batch_images(data):
  """The images of a batch (or of its spec): the first element of a tuple,
  the "image" entry of a dict; ValueError unless uint8."""
  images = data[0] if isinstance(data, (tuple, list)) else data
  if isinstance(images, dict):
    if "image" not in images:
      raise ValueError(f"GLVAE.fit and evaluate read the \"image\" entry of "
                       f"dict batches; got keys {sorted(images)}.")
    images = images["image"]
  try:
    dtype = tf.as_dtype(images.dtype)
  except (AttributeError, TypeError):
    dtype = None
  if dtype != tf.uint8:
    raise ValueError(_FLOAT_IMAGES.format(
        dtype=dtype.name if dtype else type(images).__name__))
  return images


def _first_images(x, batch_size):
  """The images `fit` initialises the model on: its data's first batch."""
  if isinstance(x, tf.data.Dataset):
    return batch_images(next(iter(x.take(1))))
  if isinstance(x, dict) or hasattr(x, "shape"):
    images = batch_images(x)
    return images[:batch_size or 32]
  raise ValueError(
      f"fit initialises the model on the first batch of a tf.data.Dataset or "
      f"an array; for a {type(x).__name__}, call model.initialize(images) "
      f"first.")


def _check_data(x, num_replicas: int = 1):
  """Refuses float images before any work, where the spec tells; and, with
  several replicas, batches that may not split evenly over them."""
  if isinstance(x, tf.data.Dataset):
    batch = batch_images(x.element_spec).shape[0]
    if num_replicas > 1 and (batch is None or batch % num_replicas):
      raise ValueError(
          f"fit with {num_replicas} replicas needs batches that split evenly "
          f"over them (a replica without images cannot train): batch the "
          f"dataset with drop_remainder=True and a batch size divisible by "
          f"{num_replicas}; got batch size {batch}.")
  elif isinstance(x, dict) or hasattr(x, "dtype"):
    batch_images(x)


class FitMixin:
  """`compile`, `fit`, `evaluate`, `train_step` and `test_step` of
  `tfglv.GLVAE` (see module docstring)."""

  def compile(self, optimizer="adam", loss=None, metrics=None, *,
              seed: int = 0, num_posterior_samples: int = 1,
              eval_posterior_samples: int = 1, grad_clip_norm: float = 0.0,
              free_bits: float = 0.0, free_bits_groups: int = 1,
              kl_warmup_steps: int = 0, jit_compile=False, **kwargs):
    """Keras's `compile`, without a loss: fit minimises the negative ELBO.

    Args:
      optimizer: a Keras optimizer or its name (default "adam"); the
        paper's AdamW and schedule: `tfglv.training.optimizer.
        build_optimizer(config.train, model.nats_per_bit_dim)` (a model
        saved with it loads after `import tfglv.training`).
      seed, num_posterior_samples, grad_clip_norm: as `train.seed`,
        `train.num_posterior_samples` and `train.grad_clip_norm`.
      eval_posterior_samples: k of the bound `evaluate` reports.
      free_bits, free_bits_groups, kl_warmup_steps: as `train.*`, the
        knobs against collapse (`tfglv.kl_budget`; 0, 1, 0: off); the
        reported loss stays the negative ELBO.
      jit_compile: XLA for the steps (off: not measured for this model).
      **kwargs: Keras's (`steps_per_execution`, `run_eagerly`, ...).
    """
    if loss is not None or metrics is not None or kwargs.get(
        "weighted_metrics") or kwargs.get("loss_weights"):
      raise ValueError(
          "GLVAE.compile takes no loss or metrics: fit minimises the negative "
          "ELBO and reports loss, bpd, nll, kl and skipped_steps; pass only "
          "optimizer (and seed, num_posterior_samples, "
          "eval_posterior_samples, grad_clip_norm, free_bits, "
          "free_bits_groups, kl_warmup_steps).")
    settings = FitSettings(
        seed, num_posterior_samples, eval_posterior_samples,
        float(grad_clip_norm),
        kl_budget.KLBudget(free_bits, free_bits_groups, kl_warmup_steps))
    _check_settings(settings)
    budget = kl_budget.make(settings.knobs, self.latent_dim, prefix="",
                            variant=self.variant)
    super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)
    object.__setattr__(self, "_fit_state", _FitState(
        settings, self.distribute_strategy, budget))
    with self.distribute_strategy.scope():
      # Before the first distributed step, so its slots are mirrored.
      self.optimizer.build(self.trainable_variables)
    # float16 networks: dynamic loss scale, saved with the optimizer.
    self._fit_state.loss_scale = loss_scale.for_model(
        self, self.optimizer, self.distribute_strategy)

  def get_compile_config(self):
    config = super().get_compile_config()
    if config and self.__dict__.get("_fit_state") is not None:
      settings = self._fit_state.settings._asdict()
      config.update(settings.pop("knobs")._asdict(), **settings)
    return config

  def compile_from_config(self, config):
    self.compile(**keras.saving.deserialize_keras_object(config))

  def make_train_function(self, force=False):
    if self.train_function is None or force:
      super().make_train_function(force=True)
      self.train_function = compiled.without_rewrites(self.train_function)
    return self.train_function

  def make_test_function(self, force=False):
    if self.test_function is None or force:
      super().make_test_function(force=True)
      self.test_function = compiled.without_rewrites(self.test_function)
    return self.test_function

  @property
  def metrics(self):
    state = self.__dict__.get("_fit_state")
    return list(state.trackers.values()) if state else super().metrics

  def fit(self, x=None, y=None, batch_size=None, *args, **kwargs):
    """Keras's `fit`; initialises the model on the first batch if needed."""
    if self.compiled:
      _check_data(x, self.distribute_strategy.num_replicas_in_sync)
      if not self.is_initialized:
        images = _first_images(x, batch_size)
        with self.distribute_strategy.scope():
          self.initialize(images, seed=self._fit_state.settings.seed)
    return super().fit(x, y, batch_size, *args, **kwargs)

  def evaluate(self, x=None, y=None, *args, **kwargs):
    """Keras's `evaluate`; batch i draws its noise from (seed + 1, i)."""
    if self.compiled:
      _check_data(x)
      self._fit_state.test_batches.assign(0)
    return super().evaluate(x, y, *args, **kwargs)

  def train_step(self, data):
    settings, trackers = self._fit_state.settings, self._fit_state.trackers
    images = quantization.check_images(batch_images(data),
                                       self.config.image_shape)
    context = tf.distribute.get_replica_context()
    variables = self.trainable_variables
    count = tf.cast(tf.shape(images)[0], tf.float32)
    if context.num_replicas_in_sync > 1:
      count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
    grads, finite, values = update_step.replica_gradients(
        self, images, self.optimizer.iterations, variables,
        seed=settings.seed, global_batch_size=count,
        clip_norm=settings.grad_clip_norm,
        num_samples=settings.num_posterior_samples,
        kl_budget=self._fit_state.kl_budget,
        loss_scale=self._fit_state.loss_scale)
    resum = (context.num_replicas_in_sync > 1 and
             getattr(self.optimizer, "sums_replica_gradients", True))

    def apply(grads):
      if resum:  # The optimizer sums over replicas: give it g once.
        first = tf.equal(
            tf.distribute.get_replica_context().replica_id_in_sync_group, 0)
        grads = [tf.where(first, g, tf.zeros_like(g)) for g in grads]
      self.optimizer.apply(grads, variables)

    def apply_or_skip(strategy, grads, finite):
      finite = strategy.experimental_local_results(finite)[0]
      return update_step.apply_or_skip(strategy, finite, apply, (grads,),
                                       self._fit_state.loss_scale)

    skipped = context.merge_call(apply_or_skip, args=(grads, finite))
    weight = tf.cast(finite, tf.float32)
    for name, key in _ELBO_METRICS:
      trackers[name].update_state(tf.where(finite, values[key], 0.0),
                                  sample_weight=weight)
    trackers["skipped_steps"].update_state(tf.cast(skipped, tf.float32))
    return self._fit_state.results()

  def test_step(self, data):
    state = self._fit_state
    images = quantization.check_images(batch_images(data),
                                       self.config.image_shape)
    context = tf.distribute.get_replica_context()
    seed = update_step.step_seed(state.settings.seed + 1,
                                 state.test_batches.read_value(),
                                 context.replica_id_in_sync_group)
    sums = update_step.replica_loss_sums(
        self, images, seed, state.settings.eval_posterior_samples)
    keys = ("loss", "nll", "kl", "count")
    totals = tf.stack([sums[key] for key in keys])
    if context.num_replicas_in_sync > 1:
      totals = context.all_reduce(tf.distribute.ReduceOp.SUM, totals)
    totals = dict(zip(keys, tf.unstack(totals)))
    count = totals["count"]
    for name, key in _ELBO_METRICS:
      state.trackers[name].update_state(
          tf.cast(totals[key] / tf.maximum(count, 1.0), tf.float32),
          sample_weight=tf.cast(count, tf.float32))
    state.test_batches.assign_add(1)
    return state.results()
