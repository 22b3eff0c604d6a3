"""Resuming after a crash: find a readable checkpoint, keep the bad ones.

`tf.train.CheckpointManager` writes a checkpoint's files first (shards in
`<prefix>_temp/`, then merged and renamed into place) and only then rewrites
the `checkpoint` state file, atomically (a temporary file renamed over it),
to name the new checkpoint. A process killed at any moment therefore leaves
a state file that names complete checkpoints only; an interrupted save leaves
unnamed leftovers, which nothing reads and the next save of that step
overwrites.

Files can still be damaged after they were written (a full disk, a bad copy,
storage errors). `recover(directory)` runs before a trainer resumes:

  * it reads every tensor of the latest checkpoint the state file names (TF
    checks each tensor's CRC32C on reading), then of older ones, until one
    reads;
  * every unreadable checkpoint newer than that one is moved, never deleted,
    to `<directory>/corrupt/` with a warning naming the error, so the resumed
    run cannot overwrite it when it reaches that step again;
  * the state file is rewritten (atomically) to name the readable one;
  * a missing or unreadable state file next to checkpoint files (the latter
    moved to `corrupt/` too) is rebuilt from the files' names;
  * a name in the state file that is not a `ckpt-N` of this directory (a
    path into another directory, "..", an absolute path, a glob) is
    ignored with a warning and dropped from the state file, so that
    neither this module nor `tf.train.CheckpointManager` (which deletes
    old checkpoints by the names it finds there) ever touches a file
    outside the directory; no path is ever globbed;
  * `ckpt-N_temp/` folders, the leftovers of a save interrupted by a kill,
    are removed (they are never read, and only a save of the same N would
    have replaced them).

If no checkpoint reads, it raises ValueError and moves nothing.
"""

import os
import re
from typing import List, Optional, Tuple

from absl import logging
import tensorflow as tf

CORRUPT_DIR = "corrupt"
STATE_FILE = "checkpoint"  # CheckpointManager's default state file name.
_CHECKPOINT_INDEX = re.compile(r"^ckpt-(\d+)\.index$")
_CHECKPOINT_PREFIX = re.compile(r"^ckpt-\d+$")
_SAVE_LEFTOVER = re.compile(r"^ckpt-\d+_temp$")
# What TF's checkpoint reader raises for missing, truncated or damaged files
# (a truncated data file gives an IndexError, "Read less bytes than
# requested").
READ_ERRORS = (tf.errors.OpError, IndexError, ValueError, OSError)


def describe_error(error: BaseException) -> str:
  lines = str(error).strip().splitlines()
  return f"{type(error).__name__}: {lines[0] if lines else ''}"


def unreadable_reason(prefix: str) -> Optional[str]:
  """Why the checkpoint `prefix` cannot be read in full; None if it can."""
  try:
    reader = tf.train.load_checkpoint(prefix)
    for name in sorted(reader.get_variable_to_shape_map()):
      reader.get_tensor(name)
  except READ_ERRORS as e:
    return describe_error(e)
  return None


def checkpoint_step(prefix: str) -> int:
  """The number CheckpointManager put in the name: ".../ckpt-40" -> 40."""
  match = re.search(r"-(\d+)$", prefix)
  return int(match.group(1)) if match else -1


def checkpoint_files(directory: str) -> List[Tuple[str, float]]:
  """(prefix, modification time) of every `ckpt-N.index`, oldest step first."""
  if not tf.io.gfile.isdir(directory):
    return []
  found = []
  for name in tf.io.gfile.listdir(directory):
    match = _CHECKPOINT_INDEX.match(name)
    if match:
      path = os.path.join(directory, name)
      found.append((int(match.group(1)), path[:-len(".index")],
                    tf.io.gfile.stat(path).mtime_nsec / 1e9))
  return [(prefix, mtime) for _, prefix, mtime in sorted(found)]


def _read_state(directory: str):
  """(state proto or None, problem or None): None, None when there is none."""
  path = os.path.join(directory, STATE_FILE)
  if not tf.io.gfile.exists(path):
    return None, None
  try:
    # Returns None (after a warning) for text it cannot parse, and raises
    # ValueError for an empty file.
    state = tf.train.get_checkpoint_state(directory)
  except READ_ERRORS as e:
    return None, describe_error(e)
  if state is None:
    return None, "it cannot be parsed"
  return state, None


def move_aside(directory: str, paths: List[str]) -> List[str]:
  """Moves existing `paths` into `<directory>/corrupt/`; returns new paths.

  A name already taken there (the same step damaged twice) gets a numeric
  suffix: nothing in `corrupt/` is ever overwritten.
  """
  target_directory = os.path.join(directory, CORRUPT_DIR)
  tf.io.gfile.makedirs(target_directory)
  moved = []
  for path in paths:
    if not tf.io.gfile.exists(path):
      continue
    target = os.path.join(target_directory, os.path.basename(path))
    suffix = 1
    while tf.io.gfile.exists(target):
      target = os.path.join(target_directory,
                            f"{os.path.basename(path)}.{suffix}")
      suffix += 1
    tf.io.gfile.rename(path, target)
    moved.append(target)
  return moved


def _checkpoint_paths(prefix: str) -> List[str]:
  """The files of checkpoint `prefix`, found by listing (never a glob)."""
  directory, name = os.path.split(prefix)
  return [os.path.join(directory, f) for f in tf.io.gfile.listdir(directory)
          if f == name + ".index" or f.startswith(name + ".data-")]


def _own_checkpoint(prefix: str, directory: str) -> bool:
  """Whether `prefix` is a `ckpt-N` directly inside `directory`."""
  parent, name = os.path.split(os.path.join(directory, prefix))
  return (bool(_CHECKPOINT_PREFIX.match(name)) and
          os.path.abspath(parent) == os.path.abspath(directory))


def _remove_save_leftovers(directory: str) -> None:
  for name in tf.io.gfile.listdir(directory):
    path = os.path.join(directory, name.rstrip("/"))
    if _SAVE_LEFTOVER.match(name.rstrip("/")) and tf.io.gfile.isdir(path):
      tf.io.gfile.rmtree(path)
      logging.info("Removed %s, the leftover of an interrupted checkpoint "
                   "save.", path)


def recover(directory: str) -> Optional[str]:
  """Prepares `directory` for a resume; returns the checkpoint to restore.

  Returns None when the directory holds no checkpoint. See the module
  docstring for what is checked, moved and rewritten.

  Raises:
    ValueError: checkpoints exist but none of them reads in full.
  """
  if tf.io.gfile.isdir(directory):
    _remove_save_leftovers(directory)
  state, state_problem = _read_state(directory)
  rebuilt = state is None
  foreign = []
  if state is not None:
    paths = list(state.all_model_checkpoint_paths)
    if state.model_checkpoint_path not in paths:
      paths.append(state.model_checkpoint_path)
    timestamps = list(state.all_model_checkpoint_timestamps)
    if len(timestamps) != len(paths):
      timestamps = [state.last_preserved_timestamp] * len(paths)
    last_preserved = state.last_preserved_timestamp
    foreign = [p for p in paths if not _own_checkpoint(p, directory)]
    if foreign:
      logging.warning(
          "The checkpoint state file in %s names %s, not checkpoints of this "
          "directory: ignored, and dropped from the state file. Nothing "
          "outside %s is read, moved or deleted.", directory,
          ", ".join(repr(p) for p in foreign), directory)
      keep = [i for i, p in enumerate(paths) if p not in foreign]
      paths = [paths[i] for i in keep]
      timestamps = [timestamps[i] for i in keep]
      rebuilt = True
      if not paths:
        state = None
  if state is None:
    files = checkpoint_files(directory)
    if not files:
      if rebuilt and tf.io.gfile.exists(os.path.join(directory, STATE_FILE)):
        move_aside(directory, [os.path.join(directory, STATE_FILE)])
      return None
    paths = [prefix for prefix, _ in files]
    timestamps = [mtime for _, mtime in files]
    last_preserved = min(timestamps) - 1.0
    if state_problem:
      moved = move_aside(directory, [os.path.join(directory, STATE_FILE)])
      logging.warning(
          "The checkpoint state file in %s is unreadable (%s); moved it to "
          "%s and looking for checkpoints by file name.", directory,
          state_problem, moved[0] if moved else "-")
    elif not foreign:
      logging.warning(
          "%s has checkpoint files but no state file (%s); looking for "
          "checkpoints by file name.", directory, STATE_FILE)
  # Newest first; the state file lists oldest first.
  order = sorted(range(len(paths)), key=lambda i: checkpoint_step(paths[i]),
                 reverse=True)
  bad = []
  good = None
  for index in order:
    reason = unreadable_reason(paths[index])
    if reason is None:
      good = paths[index]
      break
    bad.append((paths[index], reason))
  if good is None:
    raise ValueError(
        f"No checkpoint in {directory} can be read: " + "; ".join(
            f"{os.path.basename(p)}: {r}" for p, r in bad) +
        ". Nothing was moved or deleted. Restore the files from a backup, or "
        "train from scratch in a new --workdir.")
  for prefix, reason in bad:
    moved = move_aside(directory, _checkpoint_paths(prefix))
    logging.warning(
        "Checkpoint %s is unreadable (%s): skipped. Its files are kept, moved "
        "to %s. Falling back to %s (step %d).", prefix, reason,
        os.path.join(directory, CORRUPT_DIR) if moved else "(no files left)",
        good, checkpoint_step(good))
  if bad or rebuilt:
    bad_paths = {prefix for prefix, _ in bad}
    keep = [i for i in sorted(range(len(paths)),
                              key=lambda i: checkpoint_step(paths[i]))
            if paths[i] not in bad_paths and
            checkpoint_step(paths[i]) <= checkpoint_step(good)]
    tf.compat.v1.train.update_checkpoint_state(
        directory, good, all_model_checkpoint_paths=[paths[i] for i in keep],
        all_model_checkpoint_timestamps=[timestamps[i] for i in keep],
        last_preserved_timestamp=last_preserved)
  return good
