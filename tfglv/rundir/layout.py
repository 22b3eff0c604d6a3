"""Where things are in a run directory, and whether it can be written.

    <workdir>/config.json        the resolved Config of the run
    <workdir>/checkpoints/       tf.train.CheckpointManager files

Training writes both; evaluation and export only read them.
"""

import os
import socket
from typing import Optional

import tensorflow as tf

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"


def config_path(workdir: str) -> str:
  return os.path.join(workdir, CONFIG_FILE)


def checkpoint_directory(workdir: str) -> str:
  return os.path.join(workdir, CHECKPOINT_DIR)


# TensorFlow treats a checkpoint's path as a glob pattern: its reader
# matches it ("[...]" is a character class, so checkpoints under "run[1]"
# are written but never read back), and `tf.train.CheckpointManager`
# deletes old checkpoints by globbing "<prefix>.*" (under "run*" that would
# also match another run's files). tfglv itself never globs a path, and
# refuses these characters in the directories it writes checkpoints or
# SavedModels to.
GLOB_CHARACTERS = "*?[]"


def check_path(path: str, what: str = "--workdir") -> str:
  """Raises ValueError if `path` has a character TensorFlow would glob."""
  bad = [c for c in GLOB_CHARACTERS if c in path]
  if bad:
    raise ValueError(
        f"{what} {path!r} contains {' '.join(bad)}: TensorFlow handles "
        f"checkpoint paths as glob patterns, so checkpoints there could not "
        f"be read back, or rotation could delete other directories' files. "
        f"Use a path without any of {' '.join(GLOB_CHARACTERS)}.")
  return path


def inside(path: str, directory: str) -> bool:
  """Whether `path` resolves (symlinks, "..") to a place inside `directory`."""
  if "://" in directory:  # Remote filesystems: compare the normalised text.
    return os.path.normpath(path).startswith(
        os.path.normpath(directory).rstrip("/") + "/")
  real_directory = os.path.realpath(directory)
  return os.path.realpath(os.path.join(directory, path)).startswith(
      real_directory.rstrip(os.sep) + os.sep)


def latest_checkpoint(workdir: str) -> Optional[str]:
  """The newest checkpoint the state file names; None if there is none.

  Unlike `tf.train.latest_checkpoint`, the name is never globbed, and a
  name that points outside `<workdir>/checkpoints/` is ignored.
  """
  directory = checkpoint_directory(workdir)
  try:
    state = tf.train.get_checkpoint_state(directory)
  except (tf.errors.OpError, ValueError):
    return None
  if state is None or not state.model_checkpoint_path:
    return None
  prefix = os.path.join(directory, state.model_checkpoint_path)
  if not inside(prefix, directory):
    return None
  return prefix if tf.io.gfile.exists(prefix + ".index") else None


def check_workdir(workdir: str):
  """Creates `workdir` if needed; raises ValueError if it is unwritable."""
  if not workdir:
    raise ValueError("A workdir is required (--workdir): where checkpoints, "
                     "summaries and samples go.")
  check_path(workdir)
  check_writable(workdir)


def check_writable(directory: str, what: str = "workdir", hint: str = ""):
  """Creates `directory` if needed; raises ValueError if it is unwritable
  (`hint` is appended to the message)."""
  # Workers of a cluster may share the workdir: one probe file each.
  probe = os.path.join(
      directory, f".tfglv_write_check.{socket.gethostname()}.{os.getpid()}")
  try:
    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(probe, "w") as f:
      f.write("ok")
    tf.io.gfile.remove(probe)
  except (OSError, tf.errors.OpError) as e:
    message = getattr(e, "message", None) or str(e)
    raise ValueError(
        f"{what} {directory!r} is not writable: {message}{hint}") from None
