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


def latest_checkpoint(workdir: str) -> Optional[str]:
  """The newest checkpoint the state file names; None if there is none."""
  return tf.train.latest_checkpoint(checkpoint_directory(workdir))


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
