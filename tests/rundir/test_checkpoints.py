"""Tests of tfglv.rundir.checkpoints: the checkpoint object and restore.

Restores of real training runs are in tests/training/test_trainer.py,
unreadable checkpoints in tests/rundir/test_recovery.py.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfglv import configs
from tfglv import model as model_lib
from tfglv import rundir
from tfglv.data import synthetic

from train_testlib import tiny


def test_restore_errors(tmp_path):
  with pytest.raises(ValueError, match="no config.json"):
    rundir.restore(str(tmp_path))
  configs.save(tiny(), str(tmp_path / "config.json"))
  with pytest.raises(ValueError, match="no checkpoint"):
    rundir.restore(str(tmp_path))
  os.makedirs(tmp_path / "checkpoints")
  (tmp_path / "checkpoints" / "ckpt-3.index").write_bytes(b"")
  with pytest.raises(ValueError, match="has checkpoint files but no readable "
                     "checkpoint state file"):
    rundir.restore(str(tmp_path))


def test_a_saved_model_is_restored_for_inference(tmp_path):
  workdir = str(tmp_path)
  config = tiny()
  model = model_lib.build_model(config)
  images = synthetic.generate(8, 16, 3, seed=0)["image"]
  model.initialize(images, seed=0)
  rundir.save_config(workdir, config)
  state = rundir.make_checkpoint(model, step=tf.Variable(5, dtype=tf.int64))
  path = tf.train.CheckpointManager(
      state, rundir.checkpoint_directory(workdir), 1).save(checkpoint_number=5)
  assert rundir.latest_checkpoint(workdir) == path
  assert rundir.saved_variable_count(path) == len(model.variables)
  assert rundir.saved_variable_count(path, name="optimizer") == 0

  restored_config, restored, step = rundir.restore(workdir)
  assert step == 5 and restored_config == config and restored.is_initialized
  for saved, loaded in zip(model.trainable_variables,
                          restored.trainable_variables):
    np.testing.assert_array_equal(saved.numpy(), loaded.numpy())
  z, _, v = restored.encode(images)
  np.testing.assert_array_equal(restored.decode(z, v).numpy(), images)



def _run_with_checkpoints(workdir, steps=(2, 4)):
  """A tiny run's directory with a checkpoint per step (no training)."""
  from tfglv.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  config = tiny(train__keep_checkpoints=5)
  trainer = trainer_lib.Trainer(config, workdir)
  rundir.save_config(workdir, config)
  trainer._initialize()  # pylint: disable=protected-access
  for step in steps:
    trainer.step.assign(step)
    trainer.checkpoint_manager.save(checkpoint_number=step)
  trainer.close()
  return {s: os.path.join(workdir, "checkpoints", f"ckpt-{s}") for s in steps}


def _rotate_during_first_read(monkeypatch, workdir, gone, latest):
  """Deletes `gone` (and names `latest` in the state file) while the first
  restore reads it, as a running trainer's rotation would."""
  real = rundir.checkpoints.make_checkpoint
  calls = []

  def make_checkpoint(*args, **kwargs):
    if not calls:
      for name in os.listdir(os.path.dirname(gone)):
        if name.startswith(os.path.basename(gone) + "."):
          os.remove(os.path.join(os.path.dirname(gone), name))
      tf.compat.v1.train.update_checkpoint_state(
          os.path.dirname(gone), latest)
    calls.append(1)
    return real(*args, **kwargs)

  monkeypatch.setattr(rundir.checkpoints, "make_checkpoint", make_checkpoint)


def test_a_checkpoint_rotated_away_mid_read_is_followed(tmp_path,
                                                        monkeypatch, caplog):
  workdir = str(tmp_path / "run")
  prefixes = _run_with_checkpoints(workdir)
  _rotate_during_first_read(monkeypatch, workdir, prefixes[4], prefixes[2])
  with caplog.at_level("WARNING"):
    _, _, step, used = rundir.restore_checkpoint(workdir)
  assert (step, used) == (2, prefixes[2])
  assert "was rotated away by the running trainer" in caplog.text
  assert "corrupt" not in caplog.text


def test_a_given_checkpoint_rotated_away_says_so(tmp_path, monkeypatch):
  workdir = str(tmp_path / "run")
  prefixes = _run_with_checkpoints(workdir)
  _rotate_during_first_read(monkeypatch, workdir, prefixes[4], prefixes[2])
  with pytest.raises(ValueError, match=r"ckpt-4 no longer exists: a running "
                                       r"trainer .* rotated it away"):
    rundir.restore(workdir, prefixes[4])
