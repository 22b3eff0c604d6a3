"""The training loop: `train_and_evaluate(config, workdir)`.

    config = tfglv.configs.get("tiny")
    summary = tfglv.training.train_and_evaluate(config, "/tmp/tfglv_tiny")

`Trainer(config, workdir)` checks every input (config, dataset, batch
divisibility, workdir) and builds the model, optimizer, data pipelines and
reporter without training; it raises ValueError naming the problem. `run()`
then trains from the latest checkpoint in the workdir (or from scratch,
starting with ActNorm's data-dependent initialisation), and

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

What is written where is `reporter.Reporter`'s; the run directory
(config.json, checkpoints, their recovery) is `tfglv.rundir`'s.

One writer per workdir: the trainer (the chief, with several workers)
holds the workdir's lock (`tfglv.rundir.lock`) from `__init__` to the end
of `run()`, so a second trainer on the same workdir stops at once, naming
the first. SIGTERM or SIGINT during `run()` ends it after the current step
with a checkpoint (`signals.StopRequests`; `stopped_by` names the signal).
"""

import errno
import os
import shutil
import time
from typing import Dict, List, Optional, Tuple

from absl import logging
import keras
import tensorflow as tf

from tfglv import configs
from tfglv import model as model_lib
from tfglv import rundir
from tfglv.training import code_monitor
from tfglv.training import distribute
from tfglv.training import inputs
from tfglv.training import optimizer as optimizer_lib
from tfglv.training import reporter as reporter_lib
from tfglv.training import signals
from tfglv.training import steps
from tfglv.training import validation


class Trainer:
  """Trains one config in one workdir; see the module docstring.

  Args:
    config: the Config (validated here).
    workdir: the run's directory; an existing run there is resumed.
    strategy: a tf.distribute strategy; default: `train.strategy`.
    allow_config_changes: let a resumed run change `train.*`/`data.*`
      fields outside `rundir.RESUMABLE_FIELDS` (recorded in config.json).
  """

  def __init__(self, config: configs.Config, workdir: str,
               strategy: Optional[tf.distribute.Strategy] = None,
               allow_config_changes: bool = False):
    self.config = configs.validate(config)
    train = config.train
    self.workdir = workdir
    self.strategy = strategy or distribute.create_strategy(train.strategy)
    validation.check_batch_sizes(train, self.strategy.num_replicas_in_sync)
    validation.check_data(config)
    new_workdir = bool(workdir) and not tf.io.gfile.exists(workdir)
    rundir.check_workdir(workdir)
    self.lock = rundir.lock.DirectoryLock(workdir, "training")
    self.stopped_by: Optional[str] = None
    try:
      if distribute.is_chief(self.strategy):
        self.lock.acquire()
      self._build(allow_config_changes)
    except BaseException:
      self.lock.release()
      if new_workdir:  # A run that fails its checks leaves nothing behind.
        tf.io.gfile.rmtree(workdir)
      raise

  def _build(self, allow_config_changes: bool):
    config, workdir, train = self.config, self.workdir, self.config.train
    self.config_changes = rundir.check_resume_config(
        workdir, config, allow_changes=allow_config_changes)
    # Seeds weight initialisation, and TFDS's file and buffer shuffles (which
    # also depend on TF's global seed), so a rerun or resume sees the same.
    keras.utils.set_random_seed(train.seed)
    with self.strategy.scope():
      self.model = model_lib.build_model(config.model)
      self.optimizer = optimizer_lib.build_optimizer(
          train, nats_per_loss_unit=self.model.nats_per_bit_dim)
      self.optimizer.build(self.model.trainable_variables)
      counter = dict(dtype=tf.int64, trainable=False,
                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.step = tf.Variable(0, name="step", **counter)
      self.skipped_steps = tf.Variable(0, name="skipped_steps", **counter)
    self.checkpoint = rundir.make_checkpoint(
        self.model, self.optimizer, self.step, self.skipped_steps)
    checkpoint_directory = distribute.worker_directory(
        rundir.checkpoint_directory(workdir), self.strategy)
    # Before the manager reads the state file: unreadable checkpoints are
    # moved aside (never deleted) and the newest readable one becomes latest.
    rundir.recovery.recover(checkpoint_directory)
    self.checkpoint_manager = tf.train.CheckpointManager(
        self.checkpoint, checkpoint_directory,
        max_to_keep=train.keep_checkpoints)
    self.train_step = steps.TrainStep(
        self.model, self.optimizer, self.strategy, train, train.batch_size,
        self.step, self.skipped_steps)
    self.eval_step = steps.EvalStep(self.model, self.strategy,
                                    train.eval_posterior_samples, train.seed)
    self.eval_dataset = inputs.eval_dataset(config, self.strategy)
    self.reporter = reporter_lib.Reporter(config, workdir, self.strategy,
                                          self.model, self.optimizer)

  def _initialize(self):
    """Data-dependent init (ActNorm, the encoder's weight-normalised head)
    on one batch, in cross-replica context (same values on
    every replica). Every worker reads the same batch (the unsharded
    stream, not its shard); the chief's values are then broadcast, so that
    hosts whose CPUs round differently still agree bit for bit."""
    images = inputs.init_images(self.config)
    with self.strategy.scope():
      self.model.initialize(images, seed=self.config.train.seed)
    change = distribute.broadcast_from_chief(
        self.strategy, self.model.data_initialized_variables)
    logging.info("ActNorm and the encoder head initialised on %d images.",
                 images.shape[0])
    if distribute.num_workers(self.strategy) > 1:
      logging.info("Data-dependent init: the chief's values, broadcast, "
                   "changed this worker's by at most %g.", change)

  def close(self) -> None:
    """Releases the workdir's lock (`run()` does at its end): for a trainer
    that is built but not run, so that another may take the workdir."""
    self.lock.release()

  def restore(self) -> int:
    """Restores the latest checkpoint, if any; returns the step."""
    latest = distribute.checkpoint_to_resume(self.workdir, self.strategy)
    if latest is None:
      return 0
    status = self.checkpoint.restore(latest)
    try:
      status.assert_existing_objects_matched()
    except AssertionError as e:
      raise ValueError(f"Checkpoint {latest} does not fit the model of "
                       f"{self.workdir}: {str(e).splitlines()[0]}"
                       f"{rundir.layout_hint(e)}") from None
    step = int(self.step.numpy())
    logging.info("Restored %s at step %d (%d skipped steps so far).", latest,
                 step, int(self.skipped_steps.numpy()))
    return step

  def evaluate(self) -> Dict[str, float]:
    """Test-split bits/dim: "bpd" (k-sample negative ELBO), "iw_bpd",
    "nll", "kl", averaged over images; and the global code's diagnostics
    on the same images (`code_monitor.diagnose`)."""
    evaluation = steps.average_losses(
        self.eval_step.evaluate(self.eval_dataset))
    evaluation.update(code_monitor.diagnose(
        self.model, self.config, self.strategy, evaluation["kl"],
        int(self.step.numpy())))
    return evaluation

  def run(self, max_train_seconds: Optional[float] = None) -> Dict:
    """Trains to `train.num_steps`; returns what train_summary.json holds.

    Args:
      max_train_seconds: also stop (then checkpoint, evaluate and sample as
        at the last step) once the steps after the first, which includes
        tracing, have taken this long; None: no limit. Gives models equal
        wall time in benchmarks.
    """
    try:
      with signals.StopRequests() as stop:
        return self._run(max_train_seconds, stop)
    finally:
      self.close()

  def _run(self, max_train_seconds: Optional[float],
           stop: signals.StopRequests) -> Dict:
    train = self.config.train
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
      logging.info("Continuing with changed settings: %s",
                   rundir.describe_differences(self.config_changes))
    if distribute.is_chief(self.strategy):
      rundir.save_config(self.workdir, self.config, self.config_changes)
    self.reporter.start(start_step, max_train_seconds)
    train_seconds, cpu_seconds = 0.0, 0.0
    if start_step < train.num_steps:
      train_seconds, cpu_seconds = self._train_loop(start_step,
                                                    max_train_seconds, stop)
    else:
      logging.info("Nothing to train: the run is at step %d of %d.",
                   start_step, train.num_steps)
      if start_step == 0:
        self._save_checkpoint(0)
    summary = self.reporter.summary(
        start_step, int(self.step.numpy()), int(self.skipped_steps.numpy()),
        train_seconds, self.checkpoint_manager.latest_checkpoint,
        cpu_seconds)
    # Also the last collective, so no worker leaves while others still work.
    distribute.check_workers_agree(
        self.strategy, int(summary["state_digest"][:13], 16),
        "the final state (first 52 bits of its digest)")
    self.reporter.write_summary(summary)
    return summary

  def _save_checkpoint(self, step: int):
    # Every worker must save (a save may run collectives); only the chief's
    # copy is kept, as in TF's multi-worker guidance.
    try:
      self.checkpoint_manager.save(checkpoint_number=step)
    except (tf.errors.ResourceExhaustedError, OSError) as e:
      if (isinstance(e, OSError) and e.errno != errno.ENOSPC) or (
          isinstance(e, tf.errors.ResourceExhaustedError) and
          "space" not in str(e).lower()):
        raise
      directory = existing = self.checkpoint_manager.directory
      while (not os.path.isdir(existing) and
             os.path.dirname(existing) != existing):
        existing = os.path.dirname(existing)
      free = shutil.disk_usage(existing).free / 2 ** 20
      raise CheckpointSaveError(
          f"Saving the checkpoint of step {step} in {directory} failed: the "
          f"disk is full ({free:.0f} MiB free). The earlier checkpoints are "
          f"intact: free some space and run the same command to resume."
      ) from None
    distribute.remove_worker_directory(
        rundir.checkpoint_directory(self.workdir), self.strategy)

  def _train_loop(self, start_step: int, max_train_seconds: Optional[float],
                  stop: signals.StopRequests) -> Tuple[float, float]:
    """Steps from `start_step`; returns the wall and the process's CPU
    seconds spent stepping after the first step."""
    train = self.config.train
    iterator = inputs.train_iterator(self.config, self.strategy, start_step)
    interval: List[Dict] = []
    interval_start = time.time()
    train_seconds, first_step_end = 0.0, None
    cpu_seconds, last_cpu = 0.0, None
    step = start_step
    done = False
    while not done:
      interval.append(self.train_step.train_step(iterator))
      step += 1
      now, cpu = time.time(), time.process_time()
      if first_step_end is None:
        float(interval[-1]["loss"])  # Wait for the traced first step.
        first_step_end = now = time.time()
        cpu = time.process_time()
      else:
        train_seconds += now - last_step_end
        cpu_seconds += cpu - last_cpu
      last_step_end, last_cpu = now, cpu
      done = step >= train.num_steps or (
          max_train_seconds is not None and train_seconds >= max_train_seconds)
      if step % train.log_every == 0 or done or stop.received:
        self.reporter.log_interval(step, interval, interval_start,
                                   float(self.skipped_steps.numpy()))
        interval = []
      if step % train.checkpoint_every == 0 or done or stop.received:
        self._save_checkpoint(step)
      if stop.received:  # No evaluation or samples: preemption is short.
        self.stopped_by = stop.received
        logging.warning("Stopped by %s at step %d; saved %s.",
                        stop.received, step,
                        self.checkpoint_manager.latest_checkpoint)
        break
      if step % train.eval_every == 0 or done:
        self.reporter.log_evaluation(step, self.evaluate())
      if step % train.sample_every == 0 or done:
        self.reporter.write_images(step)
      if not interval:
        interval_start = time.time()
      # Checkpoints, evaluation and samples are not training time.
      last_step_end, last_cpu = time.time(), time.process_time()
    return train_seconds, cpu_seconds


class CheckpointSaveError(RuntimeError):
  """A checkpoint could not be written (the disk is full)."""


def train_and_evaluate(config: configs.Config, workdir: str,
                       strategy: Optional[tf.distribute.Strategy] = None
                       ) -> Dict:
  """Trains `config` in `workdir` (resuming it); returns the run summary."""
  return Trainer(config, workdir, strategy=strategy).run()
