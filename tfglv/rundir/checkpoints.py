"""Checkpoints of a run, and the model rebuilt from a run directory.

A checkpoint saves the model (with ActNorm's `initialized` flags), the
optimizer (its update counter drives the learning-rate schedule), the
trainer's `step` and `skipped_steps`. The data position and the random
seeds are functions of `step`, so restoring a checkpoint resumes a run
exactly. The object paths and the variable order are frozen (see
tests/test_checkpoint_layout.py).

Evaluation and export rebuild a trained model from a workdir alone:

    config, model, step = tfglv.rundir.restore("/tmp/tfglv_tiny")
"""

import collections
import time
from typing import Optional, Tuple

from absl import logging
import tensorflow as tf

from tfglv import _compat
from tfglv import configs
from tfglv import model as model_lib
from tfglv.rundir import config_file
from tfglv.rundir import layout
from tfglv.rundir import recovery


def make_checkpoint(model, optimizer=None, step: Optional[tf.Variable] = None,
                    skipped_steps: Optional[tf.Variable] = None
                    ) -> tf.train.Checkpoint:
  """The training state as one `tf.train.Checkpoint`."""
  state = {"model": model}
  if optimizer is not None:
    state["optimizer"] = optimizer
  if step is not None:
    state["step"] = step
  if skipped_steps is not None:
    state["skipped_steps"] = skipped_steps
  return tf.train.Checkpoint(**state)


def layout_hint(error: Exception) -> str:
  """An explanation when `error` is a tfglv 0.1 checkpoint's mismatch."""
  if "/direction" in str(error) or "/length" in str(error):
    return (" This looks like a checkpoint of tfglv 0.1, whose coupling "
            "networks ended in plain convolutions; since 0.2 they are "
            "weight-normalised (direction, length, bias), as the authors' "
            "are, so 0.1 checkpoints do not load. Retrain with 0.2 (0.1's "
            "full-size configs diverged).")
  return ""


def saved_variable_count(checkpoint: str, name: str = "model") -> int:
  """Variables saved under the checkpoint's top-level object `name`."""
  graph = _compat.checkpoint_object_graph(checkpoint)
  roots = [c.node_id for c in graph.nodes[0].children if c.local_name == name]
  seen, queue, count = set(), collections.deque(roots), 0
  while queue:
    node_id = queue.popleft()
    if node_id in seen:
      continue
    seen.add(node_id)
    node = graph.nodes[node_id]
    count += any(a.name == "VARIABLE_VALUE" for a in node.attributes)
    queue.extend(child.node_id for child in node.children)
  return count


# How often `restore_checkpoint` follows a latest checkpoint that a running
# trainer rotates away while it is being read.
ROTATION_RETRIES = 3


class _Rotated(Exception):
  """The checkpoint's files disappeared while it was being read."""


def _rotated_away(checkpoint: str, settle_seconds: float = 0.0) -> bool:
  """Whether the checkpoint's index is gone (rotation deletes the data
  files first, then the index, moments apart: `settle_seconds` waits that
  out after a failed read)."""
  time.sleep(settle_seconds)
  return not tf.io.gfile.exists(checkpoint + ".index")


def restore(workdir: str, checkpoint: Optional[str] = None
            ) -> Tuple[configs.Config, model_lib.GLVAE, int]:
  """Rebuilds the model of a training run, ready for inference.

  Args:
    workdir: a training run's directory (with config.json and checkpoints).
    checkpoint: a checkpoint path (prefix) to restore instead of the latest.

  Returns:
    (config, model, step): the run's Config, its GLVAE with the restored
    weights (and the 1x1 convolutions' inverse cache enabled), and the
    training step the checkpoint was saved at.

  Raises:
    ValueError: no config.json, no checkpoint, or a checkpoint that does not
      fit the config's model.
  """
  return restore_checkpoint(workdir, checkpoint)[:3]


def restore_checkpoint(workdir: str, checkpoint: Optional[str] = None
                       ) -> Tuple[configs.Config, model_lib.GLVAE, int, str]:
  """`restore`, also returning the checkpoint it read.

  Without `checkpoint` it reads the latest; when a trainer still running
  in `workdir` rotates that one away mid-read, it says so ("rotated", not
  "corrupt") and reads the new latest, up to ROTATION_RETRIES times.
  """
  layout.check_path(workdir)
  path = layout.config_path(workdir)
  if not tf.io.gfile.exists(path):
    raise ValueError(f"{workdir!r} is not a training workdir: it has no "
                     f"{layout.CONFIG_FILE}.")
  config = configs.validate(config_file.load_config(path))
  directory = layout.checkpoint_directory(workdir)
  explicit = checkpoint is not None
  for _ in range(ROTATION_RETRIES + 1):
    if not explicit:
      checkpoint = layout.latest_checkpoint(workdir)
      if checkpoint is None and recovery.checkpoint_files(directory):
        raise ValueError(
            f"workdir {workdir!r} has checkpoint files but no readable "
            f"checkpoint state file in {directory}; pass one with "
            f"--checkpoint, or resume training, which rebuilds the state.")
      if checkpoint is None:
        raise ValueError(f"workdir {workdir!r} has no checkpoint in "
                         f"{directory}; train first (or wait for the first "
                         f"checkpoint_every steps).")
    try:
      model, step = _restore_model(config, path, checkpoint)
      return config, model, step, checkpoint
    except _Rotated:
      if explicit:
        raise ValueError(
            f"Checkpoint {checkpoint} no longer exists: a running trainer "
            f"keeps only its newest train.keep_checkpoints and rotated it "
            f"away. Pick a newer one, or leave --checkpoint out for the "
            f"latest.") from None
      logging.warning("Checkpoint %s was rotated away by the running trainer "
                      "while being read; reading the newest one instead.",
                      checkpoint)
  raise ValueError(f"The latest checkpoint of {workdir!r} was rotated away "
                   f"{ROTATION_RETRIES + 1} times while being read; try "
                   f"again, or pass --checkpoint.")


def _restore_model(config: configs.Config, path: str, checkpoint: str
                   ) -> Tuple[model_lib.GLVAE, int]:
  if _rotated_away(checkpoint):
    raise _Rotated()
  # bfloat16 coupling networks are a training speed-up; a chain of inverses
  # is only bit-reproducible in float32 (DecoderConfig.compute_dtype). The
  # variables are float32 either way.
  config = configs.override(config, {"model.decoder.compute_dtype": "float32"})
  model = model_lib.build_model(config.model)
  step = tf.Variable(0, dtype=tf.int64, trainable=False)
  state = make_checkpoint(model, step=step)
  try:
    status = state.restore(checkpoint)
    status.expect_partial()  # The optimizer is not needed for inference.
    status.assert_existing_objects_matched()
    # Matching every model variable is not enough: the checkpoint may hold
    # more (e.g. a glvae checkpoint under a glow config).
    saved = saved_variable_count(checkpoint)
    if saved != len(model.variables):
      raise ValueError(f"it holds {saved} model variables, the config's "
                       f"model has {len(model.variables)}")
  except (AssertionError, IndexError, ValueError, tf.errors.OpError) as e:
    if _rotated_away(checkpoint, settle_seconds=0.5):
      raise _Rotated() from None
    reason = recovery.unreadable_reason(checkpoint)
    if reason is not None:
      raise ValueError(
          f"Checkpoint {checkpoint} is unreadable (corrupt, truncated or "
          f"missing files): {reason}. Pick another with --checkpoint; "
          f"resuming training moves it to {recovery.CORRUPT_DIR}/ and "
          f"continues from the newest readable one.") from None
    raise ValueError(
        f"Checkpoint {checkpoint} does not fit the model of "
        f"{path} (config {config.name!r}, model {config.model.variant!r}): "
        f"{str(e).splitlines()[0]}{layout_hint(e)}") from None
  if not model.is_initialized:
    raise ValueError(f"Checkpoint {checkpoint} holds an uninitialised model "
                     f"(ActNorm never ran).")
  model.set_inference_cache(True)
  logging.info("Restored %s (step %d) from %s.", config.name,
               int(step.numpy()), checkpoint)
  return model, int(step.numpy())
