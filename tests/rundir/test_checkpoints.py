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

