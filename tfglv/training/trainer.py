"""The training loop: `train_and_evaluate(config, workdir)`.

    config = tfglv.configs.get("tiny")
    summary = tfglv.training.train_and_evaluate(config, "/tmp/tfglv_tiny")

`Trainer(config, workdir)` checks every input (config, dataset, batch
divisibility, workdir) and builds the model, optimizer and data pipelines
without training; it raises ValueError naming the problem. `run()` then
trains from the latest checkpoint in the workdir (or from scratch, starting
with ActNorm's data-dependent initialisation), and

  * logs progress every `train.log_every` steps, and TensorBoard scalars
    under <workdir>/train (loss, bpd, kl, nll, learning_rate,
    gradient_norm, skipped_steps, images_per_second),
  * saves a checkpoint every `train.checkpoint_every` steps and at the end,
  * evaluates bits/dim on the test split every `train.eval_every` steps and
    at the end (<workdir>/eval),
  * writes samples at temperatures 0.7 and 1.0 and reconstructions every
    `train.sample_every` steps and at the end, to TensorBoard and as PNG
    grids in the workdir,
  * writes <workdir>/train_summary.json at the end.
"""

import json
import os
import socket
import time
from typing import Dict, List, Optional

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from tfglv import configs
from tfglv import data
from tfglv import model as model_lib
from tfglv.training import checkpoints
from tfglv.training import distribute
from tfglv.training import monitor
from tfglv.training import optimizer as optimizer_lib
from tfglv.training import recovery
from tfglv.training import steps
from tfglv.training import summaries

SUMMARY_FILE = "train_summary.json"
NUM_SAMPLES = 16
NUM_RECONSTRUCTIONS = 8
# Log lines show these keys in this order.
TRAIN_SCALARS = ("loss", "bpd", "kl", "nll", "learning_rate", "gradient_norm",
                 "skipped_steps", "images_per_second")


def check_workdir(workdir: str):
  """Creates `workdir` if needed; raises ValueError if it is unwritable."""
  if not workdir:
    raise ValueError("A workdir is required (--workdir): where checkpoints, "
                     "summaries and samples go.")
  # Workers of a cluster may share the workdir: one probe file each.
  probe = os.path.join(
      workdir, f".tfglv_write_check.{socket.gethostname()}.{os.getpid()}")
  try:
    tf.io.gfile.makedirs(workdir)
    with tf.io.gfile.GFile(probe, "w") as f:
      f.write("ok")
    tf.io.gfile.remove(probe)
  except (OSError, tf.errors.OpError) as e:
    message = getattr(e, "message", None) or str(e)
    raise ValueError(
        f"workdir {workdir!r} is not writable: {message}") from None


def check_batch_sizes(train_config, num_replicas: int):
  """Raises ValueError unless the global batch splits evenly."""
  batch = train_config.batch_size
  if batch % num_replicas:
    nearest = max(num_replicas, batch // num_replicas * num_replicas)
    raise ValueError(
        f"train.batch_size {batch} (the global batch) is not divisible by "
        f"the {num_replicas} replicas in sync; use a multiple of "
        f"{num_replicas}, e.g. {nearest}.")
  per_replica = batch // num_replicas
  accumulation = train_config.grad_accumulation
  if per_replica % accumulation:
    raise ValueError(
        f"The per-replica batch {per_replica} (train.batch_size {batch} / "
        f"{num_replicas} replicas) is not divisible by "
        f"train.grad_accumulation {accumulation}.")
  for name in ("num_steps", "log_every", "checkpoint_every", "eval_every",
               "sample_every", "keep_checkpoints", "init_batch_size",
               "num_posterior_samples", "eval_posterior_samples"):
    if getattr(train_config, name) < 1:
      raise ValueError(f"train.{name} must be >= 1; got "
                       f"{getattr(train_config, name)}.")
  if train_config.eval_batches < 0:
    raise ValueError(f"train.eval_batches must be >= 0 (0: the whole test "
                     f"split); got {train_config.eval_batches}.")


def replica_max_abs_difference(strategy: tf.distribute.Strategy,
                               variables) -> float:
  """Largest |difference| between replicas' copies of `variables` (0: same)."""
  worst = 0.0
  for variable in variables:
    value = getattr(variable, "value", variable)  # Keras -> tf.Variable.
    copies = strategy.experimental_local_results(value)
    if len(copies) < 2:
      continue
    first = np.asarray(copies[0].numpy(), np.float64)
    for copy in copies[1:]:
      difference = np.abs(np.asarray(copy.numpy(), np.float64) - first)
      worst = max(worst, float(np.max(difference, initial=0.0)))
  return worst


class Trainer:
  """Trains one config in one workdir; see the module docstring.

  Args:
    config: the Config (validated here).
    workdir: the run's directory; an existing run there is resumed.
    strategy: a tf.distribute strategy; default: `train.strategy`.
  """

  def __init__(self, config: configs.Config, workdir: str,
               strategy: Optional[tf.distribute.Strategy] = None):
    self.config = configs.validate(config)
    train = config.train
    self.workdir = workdir
    self.strategy = strategy or distribute.create_strategy(train.strategy)
    self.num_replicas = self.strategy.num_replicas_in_sync
    check_batch_sizes(train, self.num_replicas)
    # Reading the sources surfaces missing data before anything is built.
    self.num_train_examples = data.num_examples(config, "train")
    self.num_test_examples = data.num_examples(config, "test")
    if train.batch_size > self.num_train_examples:
      # Training batches repeat the split; a larger batch is a typo that
      # would only show up as running out of memory.
      raise ValueError(
          f"train.batch_size {train.batch_size} exceeds the "
          f"{self.num_train_examples} training images of "
          f"{config.data.dataset}; use at most {self.num_train_examples}.")
    check_workdir(workdir)
    self.config_changes = checkpoints.check_resume_config(workdir, config)
    self.is_chief = distribute.is_chief(self.strategy)
    # Seeds weight initialisation, and TFDS's file and buffer shuffles (which
    # also depend on TF's global seed), so a rerun or resume sees the same.
    keras.utils.set_random_seed(train.seed)
    with self.strategy.scope():
      self.model = model_lib.build_model(config)
      self.optimizer = optimizer_lib.build_optimizer(
          train, nats_per_loss_unit=self.model.nats_per_bit_dim)
      self.optimizer.build(self.model.trainable_variables)
      counter = dict(dtype=tf.int64, trainable=False,
                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.step = tf.Variable(0, name="step", **counter)
      self.skipped_steps = tf.Variable(0, name="skipped_steps", **counter)
    self.checkpoint = checkpoints.make_checkpoint(
        self.model, self.optimizer, self.step, self.skipped_steps)
    checkpoint_directory = distribute.worker_directory(
        checkpoints.checkpoint_directory(workdir), self.strategy)
    # Before the manager reads the state file: unreadable checkpoints are
    # moved aside (never deleted) and the newest readable one becomes latest.
    recovery.recover(checkpoint_directory)
    self.checkpoint_manager = tf.train.CheckpointManager(
        self.checkpoint, checkpoint_directory,
        max_to_keep=train.keep_checkpoints)
    self.train_step = steps.TrainStep(
        self.model, self.optimizer, self.strategy, train, train.batch_size,
        self.step, self.skipped_steps)
    self.eval_step = steps.EvalStep(self.model, self.strategy,
                                    train.eval_posterior_samples, train.seed)
    self.schedule = optimizer_lib.learning_rate_schedule(train)
    self.eval_dataset = self.strategy.distribute_datasets_from_function(
        self._eval_dataset_fn())

  # ------------------------------------------------------------------ data
  def _eval_dataset_fn(self):
    config = self.config
    base = data.distributed_dataset_fn(config, "test", config.train.batch_size,
                                       training=False)
    batches = config.train.eval_batches

    def dataset_fn(input_context):
      dataset = base(input_context)
      if batches:
        per_pipeline = (input_context.num_replicas_in_sync //
                        input_context.num_input_pipelines)
        dataset = dataset.take(batches * per_pipeline)
      return dataset

    return dataset_fn

  def _train_iterator(self, start_batch: int):
    # TF's distributed iterators cannot be checkpointed; every step reads one
    # global batch, so the stream restarts exactly at batch `step`.
    config = self.config
    dataset = self.strategy.distribute_datasets_from_function(
        data.distributed_dataset_fn(config, "train", config.train.batch_size,
                                    training=True, seed=config.train.seed,
                                    start_batch=start_batch))
    return iter(dataset)

  def _initialize(self):
    """Data-dependent init (ActNorm, the encoder's weight-normalised head)
    on one batch, in cross-replica context (same values on
    every replica). Every worker reads the same batch (the unsharded
    stream, not its shard); the chief's values are then broadcast, so that
    hosts whose CPUs round differently still agree bit for bit."""
    config = self.config
    dataset = data.make_dataset(config, "train", config.train.init_batch_size,
                                training=True, seed=config.train.seed)
    images = next(iter(dataset))["image"]
    with self.strategy.scope():
      self.model.initialize(images, seed=config.train.seed)
    change = distribute.broadcast_from_chief(
        self.strategy, self.model.data_initialized_variables)
    logging.info("ActNorm and the encoder head initialised on %d images.",
                 images.shape[0])
    if distribute.num_workers(self.strategy) > 1:
      logging.info("Data-dependent init: the chief's values, broadcast, "
                   "changed this worker's by at most %g.", change)

  # ------------------------------------------------------------ restoring
  def restore(self) -> int:
    """Restores the latest checkpoint, if any; returns the step."""
    latest = checkpoints.latest_checkpoint(self.workdir)
    if distribute.num_workers(self.strategy) > 1:
      # The chief, which saves and recovers the run's checkpoints, picks one;
      # every worker restores that one from the workdir (the others only
      # save to temporary directories, see distribute.worker_directory).
      chief_step = int(distribute.chief_value(
          self.strategy, recovery.checkpoint_step(latest) if latest else -1))
      latest = None if chief_step < 0 else os.path.join(
          checkpoints.checkpoint_directory(self.workdir), f"ckpt-{chief_step}")
      if latest and not tf.io.gfile.exists(latest + ".index"):
        raise ValueError(
            f"The chief resumes from {latest}, which this worker cannot "
            f"read: with several workers the workdir must be on a file "
            f"system they all read (e.g. GCS, NFS).")
    if latest is None:
      return 0
    status = self.checkpoint.restore(latest)
    try:
      status.assert_existing_objects_matched()
    except AssertionError as e:
      raise ValueError(f"Checkpoint {latest} does not fit the model of "
                       f"{self.workdir}: {str(e).splitlines()[0]}"
                       f"{checkpoints.layout_hint(e)}") from None
    step = int(self.step.numpy())
    logging.info("Restored %s at step %d (%d skipped steps so far).", latest,
                 step, int(self.skipped_steps.numpy()))
    return step

  def _save_config(self):
    if self.is_chief:
      configs.save(self.config, checkpoints.config_path(self.workdir))

  # ------------------------------------------------------------ outputs
  def evaluate(self) -> Dict[str, float]:
    """Test-split bits/dim: "bpd" (k-sample negative ELBO), "iw_bpd",
    "nll", "kl", averaged over images."""
    totals = self.eval_step.evaluate(self.eval_dataset)
    count = float(totals["count"].numpy())
    if count == 0:
      raise ValueError("The test split produced no images to evaluate.")
    return {"bpd": float(totals["loss"].numpy()) / count,
            "iw_bpd": float(totals["iw_loss"].numpy()) / count,
            "nll": float(totals["nll"].numpy()) / count,
            "kl": float(totals["kl"].numpy()) / count,
            "num_images": count}

  def _reconstruction_images(self):
    if not hasattr(self, "_originals"):
      images, _ = data.load_arrays(self.config, "test",
                                   max_examples=NUM_RECONSTRUCTIONS)
      self._originals = images
    return self._originals

  def images(self, step: int) -> Dict[str, np.ndarray]:
    """Sample grids per temperature, and reconstructions.

    Reconstruction rows: test images; decode(encode(x)) (exact); decode of
    the images' z with fresh local detail v ~ N(0, 0.7^2 I), showing what
    the global code keeps.
    """
    seed = self.config.train.seed
    grids = {}
    with self.strategy.scope():
      for temperature in summaries.SAMPLE_TEMPERATURES:
        samples = self.model.sample(NUM_SAMPLES, temperature=temperature,
                                    seed=seed)
        grids[f"samples/temperature_{temperature}"] = summaries.sample_grid(
            samples.numpy())
      originals = self._reconstruction_images()
      z, _, v = self.model.encode(originals)
      exact = self.model.decode(z, v)
      _, fresh_v = self.model.sample_latents(len(originals), temperature=0.7,
                                             seed=seed + step)
      global_only = self.model.decode(z, fresh_v)
    grids["reconstructions"] = summaries.rows_grid(
        [originals, exact.numpy(), global_only.numpy()])
    return grids

  def _write_images(self, step: int):
    if not self.is_chief:
      return  # No collectives inside: other workers need not compute them.
    grids = self.images(step)
    self.writers.images("train", step, grids)
    for tag, grid in grids.items():
      name = tag.replace("samples/temperature_", "samples_t") + ".png"
      summaries.save_png(os.path.join(self.workdir, name), grid)

  # ----------------------------------------------------------------- loop
  def run(self, max_train_seconds: Optional[float] = None) -> Dict:
    """Trains to `train.num_steps`; returns what train_summary.json holds.

    Args:
      max_train_seconds: also stop (then checkpoint, evaluate and sample as
        at the last step) once the steps after the first, which includes
        tracing, have taken this long; None: no limit. Gives models equal
        wall time in benchmarks.
    """
    config = self.config
    train = config.train
    start_step = self.restore()
    distribute.check_workers_agree(self.strategy, start_step,
                                   "the step to start from")
    if max_train_seconds is not None and distribute.num_workers(
        self.strategy) > 1:
      raise ValueError("max_train_seconds is not supported with several "
                       "workers: each would stop at its own step.")
    if start_step == 0:
      self._initialize()
    elif self.config_changes:
      logging.info("Continuing with changed settings: %s", "; ".join(
          f"{k}: {a!r} -> {b!r}" for k, (a, b) in self.config_changes.items()))
    self._save_config()
    self.writers = summaries.SummaryWriters(self.workdir, self.is_chief)
    logging.info(
        "Training %s (%s) on %s: %d parameters, %d replicas, global batch "
        "%d, steps %d -> %d.", config.name, config.model, config.data.dataset,
        self.num_parameters, self.num_replicas, train.batch_size, start_step,
        train.num_steps)
    start_time = time.time()
    self.history: List[Dict] = []
    self.evaluations: List[Dict] = []
    train_seconds = 0.0
    if start_step < train.num_steps:
      train_seconds = self._train_loop(start_step, max_train_seconds)
    else:
      logging.info("Nothing to train: the run is at step %d of %d.",
                   start_step, train.num_steps)
      if start_step == 0:
        self._save_checkpoint(0)
    self.writers.flush()
    summary = {
        "config": config.name, "model": config.model,
        "dataset": config.data.dataset, "start_step": start_step,
        "step": int(self.step.numpy()),
        "skipped_steps": int(self.skipped_steps.numpy()),
        "num_parameters": self.num_parameters,
        "num_replicas": self.num_replicas,
        "global_batch_size": train.batch_size,
        "actnorm_initialized": self.model.is_initialized,
        "wall_time_seconds": time.time() - start_time,
        "train_seconds_after_first_step": train_seconds,
        "train_history": self.history, "evaluations": self.evaluations,
        "replica_max_abs_difference": {
            "actnorm": replica_max_abs_difference(
                self.strategy, [w for layer in self.model.actnorm_layers
                                for w in layer.weights]),
            "all_variables": replica_max_abs_difference(
                self.strategy, self.model.variables + self.optimizer.variables),
        },
        "latest_checkpoint": self.checkpoint_manager.latest_checkpoint,
        "num_workers": distribute.num_workers(self.strategy),
        "state_digest": distribute.variables_digest(
            self.strategy, self.model.variables + self.optimizer.variables),
    }
    # Logged by every worker: equal digests mean bit-identical states.
    logging.info("State digest at step %d (SHA-256 of the model and "
                 "optimizer variables): %s", summary["step"],
                 summary["state_digest"])
    # Also the last collective, so no worker leaves while others still work.
    distribute.check_workers_agree(
        self.strategy, int(summary["state_digest"][:13], 16),
        "the final state (first 52 bits of its digest)")
    if self.is_chief:
      with tf.io.gfile.GFile(os.path.join(self.workdir, SUMMARY_FILE),
                             "w") as f:
        f.write(json.dumps(summary, indent=2))
    self.writers.close()
    logging.info("Done: step %d, %d skipped; outputs in %s.", summary["step"],
                 summary["skipped_steps"], self.workdir)
    return summary

  def _save_checkpoint(self, step: int):
    # Every worker must save (a save may run collectives); only the chief's
    # copy is kept, as in TF's multi-worker guidance.
    self.checkpoint_manager.save(checkpoint_number=step)
    distribute.remove_worker_directory(
        checkpoints.checkpoint_directory(self.workdir), self.strategy)

  @property
  def num_parameters(self) -> int:
    return sum(int(np.prod(v.shape)) for v in self.model.trainable_variables)

  def _train_loop(self, start_step: int,
                  max_train_seconds: Optional[float]) -> float:
    """Steps from `start_step`; returns seconds spent after the first."""
    train = self.config.train
    progress = summaries.Progress(train.num_steps, start_step)
    divergence = monitor.DivergenceMonitor(train.divergence_intervals)
    iterator = self._train_iterator(start_step)
    interval: List[Dict] = []
    interval_start = time.time()
    train_seconds, first_step_end = 0.0, None
    step = start_step
    done = False
    while not done:
      interval.append(self.train_step.train_step(iterator))
      step += 1
      now = time.time()
      if first_step_end is None:
        float(interval[-1]["loss"])  # Wait for the traced first step.
        first_step_end = now = time.time()
      else:
        train_seconds += now - last_step_end
      last_step_end = now
      done = step >= train.num_steps or (
          max_train_seconds is not None and train_seconds >= max_train_seconds)
      if step % train.log_every == 0 or done:
        record = self._log_interval(step, interval, interval_start)
        self.history.append(record)
        warning = divergence.update(step, record["bpd"])
        if warning:
          logging.warning("%s", warning)
        progress.update(step, {k: record[k] for k in TRAIN_SCALARS})
        interval = []
      if step % train.checkpoint_every == 0 or done:
        self._save_checkpoint(step)
      if step % train.eval_every == 0 or done:
        self.evaluations.append(self._log_evaluation(step, progress))
      if step % train.sample_every == 0 or done:
        self._write_images(step)
      if not interval:
        interval_start = time.time()
      # Checkpoints, evaluation and samples are not training time.
      last_step_end = time.time()
    return train_seconds

  def _log_interval(self, step: int, interval: List[Dict],
                    interval_start: float) -> Dict:
    values = {key: np.array([float(m[key]) for m in interval])
              for key in interval[0]}
    elapsed = max(time.time() - interval_start, 1e-9)
    finite = values["finite"] > 0
    mean = lambda key: (float(np.mean(values[key][finite])) if finite.any()
                        else float("nan"))
    record = {
        "step": step,
        "loss": float(values["loss"][-1]),
        "bpd": mean("loss"), "kl": mean("kl"), "nll": mean("nll"),
        "learning_rate": float(self.schedule(self.optimizer.iterations)),
        "gradient_norm": float(values["gradient_norm"][-1]),
        "skipped_steps": float(self.skipped_steps.numpy()),
        "images_per_second": len(interval) * self.config.train.batch_size /
                             elapsed,
    }
    self.writers.scalars("train", step, {k: record[k] for k in TRAIN_SCALARS})
    return record

  def _log_evaluation(self, step: int, progress) -> Dict:
    evaluation = self.evaluate()
    self.writers.scalars("eval", step, {
        "loss": evaluation["bpd"], "bpd": evaluation["bpd"],
        "iw_bpd": evaluation["iw_bpd"], "nll": evaluation["nll"],
        "kl": evaluation["kl"]})
    progress.message(
        f"eval step {step}: test bpd {evaluation['bpd']:.4f} (iw "
        f"{evaluation['iw_bpd']:.4f}, nll {evaluation['nll']:.4f}, kl "
        f"{evaluation['kl']:.4f}) on {evaluation['num_images']:.0f} images")
    return dict(evaluation, step=step)


def train_and_evaluate(config: configs.Config, workdir: str,
                       strategy: Optional[tf.distribute.Strategy] = None
                       ) -> Dict:
  """Trains `config` in `workdir` (resuming it); returns the run summary."""
  return Trainer(config, workdir, strategy=strategy).run()
