"""What a training run shows and leaves behind, apart from its checkpoints.

`Reporter`, built with the trainer, owns:

  * the TensorBoard writers: scalars under <workdir>/train (TRAIN_SCALARS,
    every `train.log_every` steps) and <workdir>/eval (loss, bpd, iw_bpd,
    nll, kl, and the global code's `code_monitor.SCALARS`), images under
    <workdir>/train;
  * the console: a progress bar, or one log line per log interval, the
    evaluation lines, the divergence warning and the warning of a global
    code near collapse;
  * samples at TRAIN_SAMPLE_TEMPERATURES and reconstructions of the first
    NUM_RECONSTRUCTIONS test images, to TensorBoard and as PNG grids in the
    workdir (samples_t0.7.png, samples_t1.0.png, reconstructions.png);
  * <workdir>/train_summary.json.

Only the chief of a multi-worker run writes; every worker logs.
"""

import json
import os
import time
from typing import Dict, List, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from tfglv import configs
from tfglv import data
from tfglv import diagnostics
from tfglv import grids
from tfglv.training import code_monitor
from tfglv.training import distribute
from tfglv.training import monitor
from tfglv.training import optimizer as optimizer_lib
from tfglv.training import summaries

SUMMARY_FILE = "train_summary.json"
NUM_SAMPLES = 16
NUM_RECONSTRUCTIONS = 8
# The training run's sample grids; evaluation.representations samples at
# more temperatures for the paper's figures.
TRAIN_SAMPLE_TEMPERATURES = (0.7, 1.0)
# The temperature of the fresh local detail v in the reconstruction grid.
RECONSTRUCTION_TEMPERATURE = 0.7


def num_parameters(model) -> int:
  return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


class Reporter:
  """Summaries, console output, images and the summary file of one run.

  Built with the trainer; `start(start_step)` once the run knows where it
  starts, then `log_interval`, `log_evaluation` and `write_images` as the
  loop goes, and `summary` / `write_summary` at the end.

  Args:
    config: the run's Config.
    workdir: the run's directory.
    strategy: the run's strategy (only its chief writes files).
    model: the trained GLVAE.
    optimizer: its optimizer (learning rate, state digest).
  """

  def __init__(self, config: configs.Config, workdir: str,
               strategy: tf.distribute.Strategy, model, optimizer):
    self.config = config
    self.workdir = workdir
    self.strategy = strategy
    self.model = model
    self.optimizer = optimizer
    self.is_chief = distribute.is_chief(strategy)
    self.schedule = optimizer_lib.learning_rate_schedule(config.train)
    self.writers = summaries.SummaryWriters(workdir, self.is_chief)
    self.divergence = monitor.DivergenceMonitor(
        config.train.divergence_intervals)
    self.originals = None  # The test images that reconstructions show.
    if self.is_chief:
      self.originals, _ = data.load_arrays(config, "test",
                                           max_examples=NUM_RECONSTRUCTIONS)
    self.history: List[Dict] = []
    self.evaluations: List[Dict] = []
    self.start_time = time.time()
    self.progress: Optional[summaries.Progress] = None

  # --------------------------------------------------------------- console
  def start(self, start_step: int, max_train_seconds: Optional[float] = None):
    """Announces the run; the progress display starts if steps remain."""
    config, train = self.config, self.config.train
    budget = (f", at most {max_train_seconds:g} s of training"
              if max_train_seconds is not None else "")
    logging.info(
        "Training %s (%s) on %s: %d parameters, %d replicas, global batch "
        "%d, steps %d -> %d%s.", config.name, config.model.variant,
        config.data.dataset, num_parameters(self.model),
        self.strategy.num_replicas_in_sync, train.batch_size, start_step,
        train.num_steps, budget)
    self.start_time = time.time()
    if start_step < train.num_steps:
      self.progress = summaries.Progress(
          train.num_steps, start_step, max_seconds=max_train_seconds)

  def log_interval(self, step: int, interval: List[Dict],
                   interval_start: float, skipped_steps: float):
    """Reports the train steps since the last log line (their metrics)."""
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
        "kl_bits_per_image": diagnostics.kl_bits_per_image(
            mean("kl"), self.model.num_dims),
        "learning_rate": float(self.schedule(self.optimizer.iterations)),
        "gradient_norm": float(values["gradient_norm"][-1]),
        "skipped_steps": skipped_steps,
        "images_per_second": len(interval) * self.config.train.batch_size /
                             elapsed,
    }
    scalars = {key: record[key] for key in summaries.TRAIN_SCALARS}
    self.writers.scalars("train", step, scalars)
    self.history.append(record)
    warning = self.divergence.update(step, record["bpd"])
    if warning:
      logging.warning("%s", warning)
    self.progress.update(step, scalars)

  def log_evaluation(self, step: int, evaluation: Dict[str, float]):
    """Reports a test-split evaluation (see `steps.average_losses`), with
    the global code's diagnostics when it has them (`code_monitor`)."""
    scalars = {"loss": evaluation["bpd"], "bpd": evaluation["bpd"],
               "iw_bpd": evaluation["iw_bpd"], "nll": evaluation["nll"],
               "kl": evaluation["kl"]}
    code = ""
    if "active_units" in evaluation:
      scalars.update({key: evaluation[key] for key in code_monitor.SCALARS})
      code = (f"; z: KL {evaluation['kl_bits_per_image']:.2f} bits/image, "
              f"{evaluation['active_units']}/{evaluation['latent_dim']} "
              f"active units, I(x;z) ~ "
              f"{evaluation['mutual_information_bits']:.2f} bits")
    self.writers.scalars("eval", step, scalars)
    self.progress.message(
        f"eval step {step}: test bpd {evaluation['bpd']:.4f} (iw "
        f"{evaluation['iw_bpd']:.4f}, nll {evaluation['nll']:.4f}, kl "
        f"{evaluation['kl']:.4f}) on {evaluation['num_images']:.0f} images"
        f"{code}")
    if evaluation.get("collapse_warning"):
      logging.warning("%s", evaluation["collapse_warning"])
    self.evaluations.append(dict(evaluation, step=step))

  # ---------------------------------------------------------------- images
  def images(self, step: int) -> Dict[str, np.ndarray]:
    """Sample grids per temperature, and reconstructions (chief only).

    Reconstruction rows: test images; decode(encode(x)) (exact); decode of
    the images' z with fresh local detail v ~ N(0, 0.7^2 I), showing what
    the global code keeps.
    """
    seed = self.config.train.seed
    model, originals = self.model, self.originals
    images = {}
    with self.strategy.scope():
      for temperature in TRAIN_SAMPLE_TEMPERATURES:
        samples = model.sample(NUM_SAMPLES, temperature=temperature,
                               seed=seed)
        images[f"samples/temperature_{temperature}"] = grids.square_grid(
            samples.numpy(), scale=self.config.train.figure_scale,
            title=f"step {step}, temperature {temperature}")
      z, _, v = model.encode(originals)
      exact = model.decode(z, v)
      _, fresh_v = model.sample_latents(
          len(originals), temperature=RECONSTRUCTION_TEMPERATURE,
          seed=seed + step)
      global_only = model.decode(z, fresh_v)
    images["reconstructions"] = grids.rows_grid(
        [originals, exact.numpy(), global_only.numpy()],
        scale=self.config.train.figure_scale,
        row_labels=["x (test)", "decode(z, v)",
                    f"z, new v (T={RECONSTRUCTION_TEMPERATURE})"],
        title=f"step {step}")
    return images

  def write_images(self, step: int):
    if not self.is_chief:
      return  # No collectives inside: other workers need not compute them.
    images = self.images(step)
    self.writers.images("train", step, images)
    for tag, grid in images.items():
      name = tag.replace("samples/temperature_", "samples_t") + ".png"
      grids.save_png(os.path.join(self.workdir, name), grid)

  # --------------------------------------------------------------- summary
  def summary(self, start_step: int, step: int, skipped_steps: int,
              train_seconds: float, latest_checkpoint: Optional[str],
              train_cpu_seconds: Optional[float] = None) -> Dict:
    """What train_summary.json holds (flushes the TensorBoard writers).

    Logs the state digest, on every worker: equal digests mean
    bit-identical model and optimizer states.
    """
    self.writers.flush()
    config, strategy = self.config, self.strategy
    everything = self.model.variables + self.optimizer.variables
    summary = {
        "config": config.name, "model": config.model.variant,
        "dataset": config.data.dataset, "start_step": start_step,
        "step": step, "skipped_steps": skipped_steps,
        "num_parameters": num_parameters(self.model),
        "num_replicas": strategy.num_replicas_in_sync,
        "global_batch_size": config.train.batch_size,
        "actnorm_initialized": self.model.is_initialized,
        "wall_time_seconds": time.time() - self.start_time,
        "train_seconds_after_first_step": train_seconds,
        # The process's user + system time over the same steps: what a
        # shared machine does not inflate (all of the process's threads).
        "train_cpu_seconds_after_first_step": train_cpu_seconds,
        "train_history": self.history, "evaluations": self.evaluations,
        "replica_max_abs_difference": {
            "actnorm": distribute.replica_max_abs_difference(
                strategy, [w for layer in self.model.actnorm_layers
                           for w in layer.weights]),
            "all_variables": distribute.replica_max_abs_difference(
                strategy, everything),
        },
        "latest_checkpoint": latest_checkpoint,
        "num_workers": distribute.num_workers(strategy),
        "state_digest": distribute.variables_digest(strategy, everything),
    }
    logging.info("State digest at step %d (SHA-256 of the model and "
                 "optimizer variables): %s", step, summary["state_digest"])
    return summary

  def write_summary(self, summary: Dict):
    """Writes train_summary.json (chief only) and closes the writers."""
    if self.is_chief:
      with tf.io.gfile.GFile(os.path.join(self.workdir, SUMMARY_FILE),
                             "w") as f:
        f.write(json.dumps(summary, indent=2))
    self.writers.close()
    logging.info("Done: step %d, %d skipped; outputs in %s.", summary["step"],
                 summary["skipped_steps"], self.workdir)
