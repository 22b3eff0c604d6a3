"""Tests of tfglv.rundir.recovery: damaged checkpoints are kept and skipped.

Also the trainer's resume and evaluation's restore around a damaged
checkpoint. Kills of the real trainer process are in
tests/integration/test_reliability_kill.py.
"""

import glob
import logging
import os

import pytest
import tensorflow as tf

from tfglv import rundir
from tfglv.rundir import recovery
from tfglv.training import trainer as trainer_lib

from train_testlib import FAST_QUIET
from train_testlib import tiny


def write_checkpoints(directory, steps=(2, 4, 6)):
  """CheckpointManager checkpoints of a small state, one per step."""
  state = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64),
                              weights=tf.Variable(tf.zeros([3000])))
  manager = tf.train.CheckpointManager(state, directory, max_to_keep=5)
  for step in steps:
    state.step.assign(step)
    state.weights.assign(tf.fill([3000], float(step)))
    manager.save(checkpoint_number=step)
  return {step: os.path.join(directory, f"ckpt-{step}") for step in steps}


def truncate(path):
  with open(path, "rb") as f:
    content = f.read()
  with open(path, "wb") as f:
    f.write(content[:len(content) // 2])


def flip_bytes(path):
  with open(path, "r+b") as f:
    f.seek(os.path.getsize(path) // 2)
    chunk = f.read(16)
    f.seek(os.path.getsize(path) // 2)
    f.write(bytes(b ^ 0xFF for b in chunk))


DAMAGE = {
    "truncated data": lambda prefix: truncate(
        prefix + ".data-00000-of-00001"),
    "flipped bytes in data": lambda prefix: flip_bytes(
        prefix + ".data-00000-of-00001"),
    "truncated index": lambda prefix: truncate(prefix + ".index"),
    "empty data": lambda prefix: open(
        prefix + ".data-00000-of-00001", "wb").close(),
    "missing data": lambda prefix: os.remove(
        prefix + ".data-00000-of-00001"),
}


def corrupt_listing(directory):
  corrupt = os.path.join(directory, recovery.CORRUPT_DIR)
  return sorted(os.listdir(corrupt)) if os.path.isdir(corrupt) else []


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_latest_checkpoint_is_kept_and_skipped(tmp_path, damage,
                                                       caplog):
  directory = str(tmp_path / "run" / "checkpoints")
  prefixes = write_checkpoints(directory)
  DAMAGE[damage](prefixes[6])
  kept = {name: open(os.path.join(directory, name), "rb").read()
          for name in os.listdir(directory) if name.startswith("ckpt-6.")}
  with caplog.at_level(logging.WARNING):
    good = recovery.recover(directory)
  assert good == prefixes[4]
  assert tf.train.latest_checkpoint(directory) == prefixes[4]
  assert tf.train.get_checkpoint_state(
      directory).all_model_checkpoint_paths[:] == [prefixes[2], prefixes[4]]
  # Kept byte for byte, out of the way of the run's next save of step 6.
  assert corrupt_listing(directory) == sorted(kept)
  for name, content in kept.items():
    with open(os.path.join(directory, recovery.CORRUPT_DIR, name), "rb") as f:
      assert f.read() == content
  assert not glob.glob(prefixes[6] + ".*")
  message = " ".join(r.getMessage() for r in caplog.records)
  assert "ckpt-6 is unreadable" in message and "Falling back to" in message
  assert os.path.join(directory, recovery.CORRUPT_DIR) in message
  # Nothing left to do the second time.
  assert recovery.recover(directory) == prefixes[4]


def test_two_damaged_checkpoints_fall_back_twice(tmp_path):
  directory = str(tmp_path / "run" / "checkpoints")
  prefixes = write_checkpoints(directory)
  DAMAGE["truncated data"](prefixes[6])
  DAMAGE["flipped bytes in data"](prefixes[4])
  assert recovery.recover(directory) == prefixes[2]
  assert len(corrupt_listing(directory)) == 4
  # The same step damaged again later keeps both copies.
  write_checkpoints(directory, steps=(4,))
  DAMAGE["truncated index"](prefixes[4])
  assert recovery.recover(directory) == prefixes[2]
  assert "ckpt-4.index.1" in corrupt_listing(directory)


def test_no_readable_checkpoint_is_an_error_and_moves_nothing(tmp_path):
  directory = str(tmp_path / "run" / "checkpoints")
  prefixes = write_checkpoints(directory, steps=(2, 4))
  for prefix in prefixes.values():
    DAMAGE["truncated data"](prefix)
  before = sorted(os.listdir(directory))
  with pytest.raises(ValueError, match=r"No checkpoint in .* can be read: "
                     r"ckpt-4: IndexError.*ckpt-2: IndexError.*Nothing was "
                     r"moved or deleted"):
    recovery.recover(directory)
  assert sorted(os.listdir(directory)) == before


def test_leftovers_of_an_interrupted_save_are_ignored_then_overwritten(
    tmp_path):
  """What a kill inside CheckpointManager.save can leave behind.

  Killed while writing shards (a `_temp` directory), while merging (a
  partial index), or between TF's two state writes around its retention
  sweep (the state still names a deleted checkpoint): the state file names
  only complete checkpoints, so the resume needs no repair.
  """
  directory = str(tmp_path / "run" / "checkpoints")
  prefixes = write_checkpoints(directory)
  shards = os.path.join(directory, "ckpt-8_temp")
  os.makedirs(shards)
  with open(os.path.join(shards, "part-00000-of-00001.index"), "wb") as f:
    f.write(b"\0" * 10)
  with open(prefixes[4] + ".index", "rb") as f:
    index = f.read()
  with open(os.path.join(directory, "ckpt-8.index"), "wb") as f:
    f.write(index[:len(index) // 3])
  os.remove(prefixes[2] + ".index")  # Swept, still named by the state.
  state_before = open(os.path.join(directory, "checkpoint")).read()
  assert recovery.recover(directory) == prefixes[6]
  assert open(os.path.join(directory, "checkpoint")).read() == state_before
  assert corrupt_listing(directory) == []
  # The resumed run's save of step 8 replaces the partial files.
  write_checkpoints(directory, steps=(8,))
  assert recovery.unreadable_reason(os.path.join(directory, "ckpt-8")) is None
  assert tf.train.latest_checkpoint(directory).endswith("ckpt-8")


@pytest.mark.parametrize("state_text", ["", "garbage {{{"])
def test_unreadable_state_file_is_rebuilt_from_file_names(tmp_path,
                                                          state_text):
  directory = str(tmp_path / "run" / "checkpoints")
  prefixes = write_checkpoints(directory)
  DAMAGE["truncated data"](prefixes[6])
  with open(os.path.join(directory, "checkpoint"), "w") as f:
    f.write(state_text)
  # TF itself would restart such a run from scratch (or fail to start).
  assert recovery.recover(directory) == prefixes[4]
  assert tf.train.latest_checkpoint(directory) == prefixes[4]
  assert corrupt_listing(directory) == sorted(
      ["checkpoint", "ckpt-6.data-00000-of-00001", "ckpt-6.index"])


def test_trainer_resumes_from_the_last_good_checkpoint(tmp_path, caplog):
  """The trainer's restore, after recovery, and eval/export's clear error."""
  workdir = str(tmp_path / "run")
  config = tiny(FAST_QUIET, train__keep_checkpoints=5)
  trainer = trainer_lib.Trainer(config, workdir)
  rundir.save_config(workdir, config)
  trainer._initialize()  # pylint: disable=protected-access
  for step in (2, 4):
    trainer.step.assign(step)
    trainer.checkpoint_manager.save(checkpoint_number=step)
  bad = os.path.join(workdir, "checkpoints", "ckpt-4")
  DAMAGE["truncated data"](bad)
  # Evaluation and export name the problem (this used to be an IndexError).
  with pytest.raises(ValueError, match=r"ckpt-4 is unreadable \(corrupt, "
                     r"truncated or missing files\): IndexError"):
    rundir.restore(workdir)
  trainer.close()  # As its process would at exit: another may take over.
  with caplog.at_level(logging.WARNING):
    resumed = trainer_lib.Trainer(config, workdir)
  assert resumed.restore() == 2
  assert int(resumed.skipped_steps.numpy()) == 0
  assert resumed.model.is_initialized  # From the checkpoint, not re-run.
  assert "ckpt-4 is unreadable" in caplog.text
  assert corrupt_listing(os.path.join(workdir, "checkpoints")) == [
      "ckpt-4.data-00000-of-00001", "ckpt-4.index"]
  # Evaluation now finds the good one.
  assert rundir.restore(workdir)[2] == 2


def _victims(root):
  """Files shaped like checkpoints in a directory beside the run's."""
  victim = root / "victim"
  victim.mkdir()
  for name in ("report-2024.index", "report-2024.data-00000-of-00001",
               "ckpt-9.index", "ckpt-9.data-00000-of-00001"):
    (victim / name).write_text("precious")
  return victim


@pytest.mark.parametrize("crafted", [
    "../../victim/report-2024", "{victim}/report-2024", "{victim}/ckpt-9",
    "ckpt-*", "../victim/ckpt-9"])
def test_a_crafted_state_file_never_touches_files_outside(tmp_path, caplog,
                                                          crafted):
  victim = _victims(tmp_path)
  directory = tmp_path / "run" / "checkpoints"
  prefixes = write_checkpoints(str(directory), steps=(2,))
  crafted = crafted.format(victim=victim)
  (directory / "checkpoint").write_text(
      f'model_checkpoint_path: "{crafted}"\n'
      f'all_model_checkpoint_paths: "ckpt-2"\n'
      f'all_model_checkpoint_paths: "{crafted}"\n')
  before = sorted(os.listdir(victim))
  with caplog.at_level(logging.WARNING):
    good = recovery.recover(str(directory))
  assert good == prefixes[2]
  assert "not checkpoints of this directory: ignored" in caplog.text
  assert sorted(os.listdir(victim)) == before
  assert all((victim / n).read_text() == "precious" for n in before)
  # The state file no longer names it, so CheckpointManager's rotation
  # cannot delete it either.
  assert crafted not in (directory / "checkpoint").read_text()
  assert rundir.latest_checkpoint(str(tmp_path / "run")) == prefixes[2]


def test_latest_checkpoint_ignores_a_path_outside_the_run(tmp_path):
  victim = _victims(tmp_path)
  directory = tmp_path / "run" / "checkpoints"
  directory.mkdir(parents=True)
  (directory / "checkpoint").write_text(
      f'model_checkpoint_path: "{victim}/ckpt-9"\n')
  assert rundir.latest_checkpoint(str(tmp_path / "run")) is None


def test_interrupted_save_leftovers_are_removed(tmp_path):
  directory = tmp_path / "checkpoints"
  prefixes = write_checkpoints(str(directory), steps=(2,))
  leftover = directory / "ckpt-4_temp"
  leftover.mkdir()
  (leftover / "part-00000-of-00001.index").write_text("partial")
  assert recovery.recover(str(directory)) == prefixes[2]
  assert not leftover.exists()
  assert (directory / "ckpt-2.index").exists()


@pytest.mark.parametrize("name", ["run[1] x", "run*", "run?"])
def test_a_workdir_with_glob_characters_is_refused_before_writing(tmp_path,
                                                                  name):
  workdir = tmp_path / name
  with pytest.raises(ValueError, match=r"TensorFlow handles checkpoint paths "
                                       r"as glob patterns"):
    trainer_lib.Trainer(tiny(FAST_QUIET), str(workdir))
  assert not workdir.exists()
  with pytest.raises(ValueError, match=r"glob patterns"):
    rundir.restore(str(workdir))
