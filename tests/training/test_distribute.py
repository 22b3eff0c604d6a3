"""Tests of tfglv.training.distribute that need one process only.

Collectives between workers are in tests/integration/test_multi_worker.py.
"""

import keras
import pytest
import tensorflow as tf

from tfglv import configs
from tfglv.training import distribute


class TwoCopies:
  """A stand-in strategy whose "distributed" values are lists of copies."""

  def experimental_local_results(self, value):
    return value


def test_replica_difference_detects_diverged_copies():
  same = [tf.Variable([1.0, 2.0]), tf.Variable([1.0, 2.0])]
  different = [tf.Variable([1.0, 2.0]), tf.Variable([1.0, 2.5])]
  assert distribute.replica_max_abs_difference(TwoCopies(), [same]) == 0.0
  assert distribute.replica_max_abs_difference(
      TwoCopies(), [same, different]) == pytest.approx(0.5)


def test_distributed_value_unwraps_keras_variables_only():
  keras_variable = keras.Variable([1.0, 2.0])
  tf_variable = tf.Variable([1.0])
  assert distribute.distributed_value(keras_variable) is keras_variable.value
  assert distribute.distributed_value(tf_variable) is tf_variable


def test_one_process_is_one_chief_worker(tmp_path):
  strategy = distribute.create_strategy("one_device")
  assert distribute.is_chief(strategy)
  assert distribute.num_workers(strategy) == 1
  assert distribute.worker_directory(str(tmp_path), strategy) == str(tmp_path)
  assert distribute.chief_value(strategy, 3.0) == 3.0
  distribute.check_workers_agree(strategy, 1.0, "anything")
  assert distribute.checkpoint_to_resume(str(tmp_path), strategy) is None


def test_unknown_strategy_names_the_allowed_ones():
  with pytest.raises(ValueError, match="allowed: " + ", ".join(
      configs.STRATEGIES)):
    distribute.create_strategy("tpu")
