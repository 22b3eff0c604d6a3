"""TensorBoard summaries and the console progress display of training.

Scalars go to `<workdir>/train` and `<workdir>/eval` under the same tags
("loss", "bpd", ...), so TensorBoard overlays the two runs:

    tensorboard --logdir <workdir>

`training.reporter.Reporter` decides what is written when.
"""

import os
import sys
import time
from typing import Dict, Optional

from absl import logging
import keras
import numpy as np
import tensorflow as tf

# The scalars of a training log interval, in the order log lines show them.
TRAIN_SCALARS = ("loss", "bpd", "kl", "nll", "kl_bits_per_image",
                 "learning_rate", "gradient_norm", "skipped_steps",
                 "images_per_second")


class SummaryWriters:
  """One TensorBoard writer per phase; no-ops where `enabled` is False."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    if enabled:
      self._writers = {
          phase: tf.summary.create_file_writer(os.path.join(workdir, phase))
          for phase in ("train", "eval")}
    else:
      self._writers = {}

  def scalars(self, phase: str, step: int, values: Dict[str, float]):
    if not self.enabled:
      return
    with self._writers[phase].as_default(step=step):
      for name, value in values.items():
        tf.summary.scalar(name, value)

  def images(self, phase: str, step: int, images: Dict[str, np.ndarray]):
    """`images`: {tag: uint8 [h, w, C] grid}."""
    if not self.enabled:
      return
    with self._writers[phase].as_default(step=step):
      for name, image in images.items():
        tf.summary.image(name, image[None], step=step)

  def flush(self):
    for writer in self._writers.values():
      writer.flush()

  def close(self):
    for writer in self._writers.values():
      writer.close()


def _format(name: str, value: float) -> str:
  if name in ("learning_rate",):
    return f"{name} {value:.2e}"
  if name in ("images_per_second", "skipped_steps"):
    return f"{name} {value:.0f}"
  return f"{name} {value:.4f}"


class Progress:
  """A progress bar on an interactive console, log lines otherwise."""

  def __init__(self, num_steps: int, initial_step: int = 0,
               interactive: Optional[bool] = None,
               max_seconds: Optional[float] = None):
    if interactive is None:
      interactive = sys.stdout.isatty()
    self.num_steps = num_steps
    # A time budget (--max_train_seconds) bounds the ETA too.
    self.max_seconds = max_seconds
    self.start_step = initial_step
    self.start_time = time.time()
    self._bar = None
    if interactive:
      self._bar = keras.utils.Progbar(
          num_steps, stateful_metrics=TRAIN_SCALARS,
          unit_name="step", interval=0)  # Updated every log_every anyway.
      self._bar.update(initial_step)

  def update(self, step: int, values: Dict[str, float]):
    if self._bar is not None:
      self._bar.update(step, [(k, v) for k, v in values.items()])
      return
    done = step - self.start_step
    elapsed = time.time() - self.start_time
    eta = elapsed / max(done, 1) * (self.num_steps - step)
    if self.max_seconds is not None:
      eta = max(0.0, min(eta, self.max_seconds - elapsed))
    text = " | ".join(_format(k, v) for k, v in values.items())
    logging.info("step %d/%d | %s | ETA %dm%02ds", step, self.num_steps, text,
                 eta // 60, eta % 60)

  def message(self, text: str):
    """Logs a line without garbling the bar."""
    if self._bar is not None:
      sys.stdout.write("\n")
    logging.info(text)
