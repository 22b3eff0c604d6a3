"""A trained run opened for evaluation, and where its results go.

    run = load_run("/tmp/tfglv_tiny")      # restores the latest checkpoint
    run.model.sample(16, temperature=0.7)
    run.write_json("bpd_test.json", {...})  # -> /tmp/tfglv_tiny/eval/...

Every evaluation output lands in `<workdir>/eval/` (the trainer's TensorBoard
evaluation scalars live there too), or in `output_directory` when given
(e.g. for a read-only workdir).
"""

import csv
import dataclasses
import io
import json
import os
import sys
import time
from typing import Dict, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfglv import configs
from tfglv import data
from tfglv import grids
from tfglv import model as model_lib
from tfglv import rundir

EVAL_DIR = "eval"


@dataclasses.dataclass
class EvaluationRun:
  """A restored training run: its config, model and output directory."""
  workdir: str
  config: configs.Config
  model: model_lib.GLVAE
  step: int
  # Enlargement of the figures' cells (`tfglv.grids`; 0: >= 96 px).
  figure_scale: int = 0
  # Where results go; "" for <workdir>/eval.
  output_directory: str = ""

  @property
  def output_dir(self) -> str:
    return self.output_directory or default_output_dir(self.workdir)

  def path(self, name: str) -> str:
    return os.path.join(self.output_dir, name)

  def write_json(self, name: str, values: Dict) -> str:
    path = self.path(name)
    tf.io.gfile.makedirs(self.output_dir)
    with tf.io.gfile.GFile(path, "w") as json_file:
      json_file.write(json.dumps(values, indent=2, sort_keys=True))
    return path

  def write_csv(self, name: str, header: Sequence[str],
                rows: Sequence[Sequence]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path = self.path(name)
    tf.io.gfile.makedirs(self.output_dir)
    with tf.io.gfile.GFile(path, "w") as csv_file:
      csv_file.write(text.getvalue())
    return path

  def write_png(self, name: str, image: np.ndarray) -> str:
    path = self.path(name)
    grids.save_png(path, image)
    return path


def check_run_directory(workdir: str) -> None:
  """Raises ValueError unless `workdir` names an existing directory."""
  if not workdir:
    raise ValueError("A workdir is required (--workdir): the directory of a "
                     "training run (config.json and checkpoints/).")
  if not tf.io.gfile.isdir(workdir):
    raise ValueError(f"workdir {workdir!r} does not exist; pass the "
                     f"directory of a training run (config.json and "
                     f"checkpoints/), e.g. the --workdir of train.main.")


def default_output_dir(workdir: str) -> str:
  return os.path.join(workdir, EVAL_DIR)


def load_run(workdir: str, checkpoint: Optional[str] = None
             ) -> EvaluationRun:
  """Restores the run in `workdir` (its latest checkpoint by default).

  Raises:
    ValueError: the workdir does not exist, has no config.json or no
      checkpoint, or the checkpoint does not fit its config.
  """
  check_run_directory(workdir)
  if checkpoint and not tf.io.gfile.exists(checkpoint + ".index"):
    raise ValueError(f"Checkpoint {checkpoint!r} does not exist (no "
                     f"{checkpoint}.index).")
  config, model, step = rundir.restore(workdir, checkpoint)
  return EvaluationRun(workdir=workdir, config=config, model=model, step=step)


class ImageProgress:
  """A progress bar over images on a terminal; elsewhere (a log file, a
  pipe) a plain line every `interval` s and at the end, with no carriage
  returns or colour codes."""

  def __init__(self, total: int, enabled: bool = True,
               interval: Optional[float] = None):
    self._terminal = sys.stdout.isatty()
    if interval is None:
      interval = 0.1 if self._terminal else 15.0
    self._enabled, self._total, self._interval = enabled, total, interval
    self._bar = None
    if enabled and self._terminal:
      self._bar = keras.utils.Progbar(total, unit_name="image",
                                      interval=interval)
    self._done = 0
    self._last_line = time.time()

  def add(self, count: int, values: Optional[Dict[str, float]] = None):
    self._done += count
    if self._bar is not None:
      self._bar.update(self._done, values=list((values or {}).items()))
      return
    now = time.time()
    if self._enabled and (self._done >= self._total or
                          now - self._last_line >= self._interval):
      self._last_line = now
      shown = "".join(f" - {key}: {value:.4f}"
                      for key, value in (values or {}).items())
      print(f"{self._done}/{self._total} images{shown}", flush=True)


def check_count(name: str, value, allow_none: bool = False):
  """Raises ValueError unless `value` >= 1 (or None, when allowed: all)."""
  if value is None and allow_none:
    return
  if value is None or value < 1:
    unset = " (or unset: all)" if allow_none else ""
    raise ValueError(f"{name} must be >= 1{unset}; got {value}.")


def check_global_code(run: EvaluationRun, task: str):
  """Raises ValueError when the run's model has no global code z."""
  if run.model.latent_dim == 0:
    raise ValueError(
        f"--task={task} needs a global code z, but {run.workdir} is a "
        f"{run.config.model.variant!r} run, which has none (no encoder, "
        f"only the local code v): there is nothing to switch. Evaluate a "
        f"glvae or glvae_prior_only run.")


def load_images(run: EvaluationRun, split: str, count: Optional[int],
                minimum: int = 1, what: str = "This task") -> np.ndarray:
  """The first `count` images of a split (all when None), at least `minimum`."""
  images, _ = data.load_arrays(run.config, split, max_examples=count)
  if len(images) < minimum:
    raise ValueError(f"{what} needs at least {minimum} images; the {split} "
                     f"split has {len(images)}.")
  return images
