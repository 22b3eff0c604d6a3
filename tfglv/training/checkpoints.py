"""Run directories: the resolved config, checkpoints and their restore.

A workdir holds:

    <workdir>/config.json        the resolved Config of the run
    <workdir>/checkpoints/       tf.train.CheckpointManager files

A checkpoint saves the model (with ActNorm's `initialized` flags), the
optimizer (its update counter drives the learning-rate schedule), the
trainer's `step` and `skipped_steps`. The data position and the random
seeds are functions of `step`, so restoring a checkpoint resumes a run
exactly.

Other tools rebuild a trained model from a workdir alone:

    config, model, step = restore_from_workdir("/tmp/tfglv_tiny")
"""

import collections
import os
from typing import Dict, Optional, Tuple

from absl import logging
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from tfglv import configs
from tfglv import model as model_lib
from tfglv.training import recovery

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
# Fields that define the model; a checkpoint only fits a config that agrees
# on all of them. `train` and `data` fields may change between runs.
_RUN_SECTIONS = ("train.", "data.")


def config_path(workdir: str) -> str:
  return os.path.join(workdir, CONFIG_FILE)


def checkpoint_directory(workdir: str) -> str:
  return os.path.join(workdir, CHECKPOINT_DIR)


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


def _flatten(values: Dict, prefix: str = "") -> Dict:
  flat = {}
  for key, value in values.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[prefix + key] = value
  return flat


def config_differences(old: configs.Config, new: configs.Config) -> Dict:
  """{field: (old value, new value)} for every field that differs."""
  old_flat = _flatten(configs.to_dict(old))
  new_flat = _flatten(configs.to_dict(new))
  return {key: (old_flat.get(key), new_flat.get(key))
          for key in sorted(set(old_flat) | set(new_flat))
          if old_flat.get(key) != new_flat.get(key)}


def _describe(differences: Dict) -> str:
  return "; ".join(f"{key}: {old!r} -> {new!r}"
                   for key, (old, new) in differences.items())


def load_config(path: str) -> configs.Config:
  """A run's config.json; ValueError naming the file if it does not parse."""
  try:
    return configs.load(path)
  except (ValueError, TypeError) as e:  # Bad JSON, unknown or missing fields.
    raise ValueError(f"{path} is not a readable tfglv config: {e}") from None


def check_resume_config(workdir: str, config: configs.Config) -> Dict:
  """Checks that `config` may continue the run in `workdir`.

  Returns the differences in `train`/`data` fields (allowed, e.g. a longer
  `train.num_steps`); raises ValueError when a model field differs, since
  the checkpoints would not fit the model.
  """
  path = config_path(workdir)
  if not tf.io.gfile.exists(path):
    return {}
  saved = load_config(path)
  differences = config_differences(saved, config)
  model_differences = {key: value for key, value in differences.items()
                       if not key.startswith(_RUN_SECTIONS)}
  if model_differences:
    raise ValueError(
        f"workdir {workdir!r} holds a run of a different model; its "
        f"{CONFIG_FILE} differs in {_describe(model_differences)}. Use a new "
        f"--workdir, or the saved settings to continue that run.")
  return differences


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
  reader = tf.train.load_checkpoint(checkpoint)
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
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


def latest_checkpoint(workdir: str) -> Optional[str]:
  return tf.train.latest_checkpoint(checkpoint_directory(workdir))


def restore_from_workdir(workdir: str, checkpoint: Optional[str] = None
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
  path = config_path(workdir)
  if not tf.io.gfile.exists(path):
    raise ValueError(f"{workdir!r} is not a training workdir: it has no "
                     f"{CONFIG_FILE}.")
  config = configs.validate(load_config(path))
  checkpoint = checkpoint or latest_checkpoint(workdir)
  if checkpoint is None and recovery.checkpoint_files(
      checkpoint_directory(workdir)):
    raise ValueError(
        f"workdir {workdir!r} has checkpoint files but no readable "
        f"checkpoint state file in {checkpoint_directory(workdir)}; pass one "
        f"with --checkpoint, or resume training, which rebuilds the state.")
  if checkpoint is None:
    raise ValueError(f"workdir {workdir!r} has no checkpoint in "
                     f"{checkpoint_directory(workdir)}; train first (or "
                     f"wait for the first checkpoint_every steps).")
  # bfloat16 coupling networks are a training speed-up; a chain of inverses
  # is only bit-reproducible in float32 (DecoderConfig.compute_dtype). The
  # variables are float32 either way.
  config = configs.override(config, {"decoder.compute_dtype": "float32"})
  model = model_lib.build_model(config)
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
    reason = recovery.unreadable_reason(checkpoint)
    if reason is not None:
      raise ValueError(
          f"Checkpoint {checkpoint} is unreadable (corrupt, truncated or "
          f"missing files): {reason}. Pick another with --checkpoint; "
          f"resuming training moves it to {recovery.CORRUPT_DIR}/ and "
          f"continues from the newest readable one.") from None
    raise ValueError(
        f"Checkpoint {checkpoint} does not fit the model of "
        f"{path} (config {config.name!r}, model {config.model!r}): "
        f"{str(e).splitlines()[0]}{layout_hint(e)}") from None
  if not model.is_initialized:
    raise ValueError(f"Checkpoint {checkpoint} holds an uninitialised model "
                     f"(ActNorm never ran).")
  model.set_inference_cache(True)
  logging.info("Restored %s (step %d) from %s.", config.name,
               int(step.numpy()), checkpoint)
  return config, model, int(step.numpy())
