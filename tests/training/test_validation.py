"""Tests of tfglv.training.validation."""

import numpy as np
import pytest

from tfglv.training import validation

from train_testlib import tiny


def test_batch_not_divisible_by_replicas():
  train = tiny(train__batch_size=10).train
  with pytest.raises(ValueError, match="not divisible by the 4 replicas"):
    validation.check_batch_sizes(train, 4)
  validation.check_batch_sizes(train, 2)
  with pytest.raises(ValueError, match="grad_accumulation"):
    validation.check_batch_sizes(
        tiny(train__batch_size=12, train__grad_accumulation=4).train, 2)


@pytest.mark.parametrize("name", ["num_steps", "log_every", "eval_every"])
def test_counts_must_be_positive(name):
  with pytest.raises(ValueError, match=f"train.{name} must be >= 1; got 0"):
    validation.check_batch_sizes(tiny(**{f"train__{name}": 0}).train, 1)
  with pytest.raises(ValueError, match="train.eval_batches must be >= 0"):
    validation.check_batch_sizes(tiny(train__eval_batches=-1).train, 1)


def test_data_is_read_and_the_batch_must_fit_it(tmp_path):
  validation.check_data(tiny())
  with pytest.raises(ValueError, match="exceeds the 64 training images"):
    validation.check_data(tiny(train__batch_size=128))
  path = tmp_path / "few.npz"
  np.savez(path, x_train=np.zeros((8, 16, 16, 3), np.uint8),
           x_test=np.zeros((4, 16, 16, 3), np.uint8))
  with pytest.raises(ValueError, match="use at most 8"):
    validation.check_data(tiny(data__dataset="npz", data__path=path,
                               train__batch_size=16))
