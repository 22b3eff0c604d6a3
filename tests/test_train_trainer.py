"""In-process tests of tfglv.training.trainer and checkpoints (one device)."""

import json
import os
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfglv import configs
from tfglv import data
from tfglv import training
from tfglv.training import checkpoints
from tfglv.training import summaries
from tfglv.training import trainer as trainer_lib

from run_testlib import write_cifar10_metadata

CIFAR_NPZ = os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                         "data", "cifar10_subset.npz")
# Settings that keep a trainer run to seconds after tracing.
FAST = {"train.strategy": "one_device", "train.batch_size": "8",
        "train.init_batch_size": "16", "train.eval_batches": "1",
        "train.log_every": "1", "train.eval_posterior_samples": "2",
        "data.synthetic_size": "64", "data.shuffle_buffer": "16"}
# tiny at 32x32: the encoder needs a third level to reach 4x4.
TINY_32 = {"image_size": "32", "encoder.channels": "[8, 8, 8]"}


def tiny(**values):
  overrides = dict(FAST)
  overrides.update({k.replace("__", "."): str(v) for k, v in values.items()})
  return configs.override(configs.get("tiny"), overrides)


def outputs(workdir):
  return sorted(os.listdir(workdir)) if os.path.isdir(workdir) else []


# --- bad input: each raises before anything is built or written ---------


def test_unwritable_workdir(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  with pytest.raises(ValueError, match="not writable"):
    trainer_lib.Trainer(tiny(), str(blocker / "run"))


def test_batch_not_divisible_by_replicas():
  train = tiny(train__batch_size=10).train
  with pytest.raises(ValueError, match="not divisible by the 4 replicas"):
    trainer_lib.check_batch_sizes(train, 4)
  trainer_lib.check_batch_sizes(train, 2)
  with pytest.raises(ValueError, match="grad_accumulation"):
    trainer_lib.check_batch_sizes(
        tiny(train__batch_size=12, train__grad_accumulation=4).train, 2)


def test_npz_without_uint8_images(tmp_path):
  path = tmp_path / "floats.npz"
  np.savez(path, x_train=np.zeros((8, 16, 16, 3), np.float32),
           x_test=np.zeros((4, 16, 16, 3), np.float32))
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match="must be uint8"):
    trainer_lib.Trainer(tiny(data__dataset="npz", data__path=path),
                        str(workdir))
  assert outputs(workdir) == []


@pytest.mark.parametrize("values, message", [
    ({"data.dataset": "npz"}, "needs data.path"),
    ({"data.dataset": "npz", "data.path": "/nonexistent/x.npz"}, "not found"),
    ({"data.dataset": "cifar10", "data.data_dir": "/nonexistent/tfds"},
     "not prepared"),
    ({"data.dataset": "imagenet"}, "Unknown dataset"),
])
def test_missing_dataset_or_data_dir(tmp_path, values, message):
  config = configs.override(tiny(**TINY_32), values)
  with pytest.raises(ValueError, match=message):
    trainer_lib.Trainer(config, str(tmp_path / "run"))
  assert outputs(tmp_path / "run") == []


def test_unknown_config_name_and_field():
  with pytest.raises(ValueError, match="Unknown config name 'huge'"):
    configs.get("huge")
  with pytest.raises(ValueError, match="Unknown config field 'train.bogus'"):
    tiny(train__bogus=1)


def test_restore_errors(tmp_path):
  with pytest.raises(ValueError, match="no config.json"):
    checkpoints.restore_from_workdir(str(tmp_path))
  configs.save(tiny(), str(tmp_path / "config.json"))
  with pytest.raises(ValueError, match="no checkpoint"):
    checkpoints.restore_from_workdir(str(tmp_path))


def test_resume_refuses_a_different_model(tmp_path):
  configs.save(tiny(), str(tmp_path / "config.json"))
  assert checkpoints.check_resume_config(
      str(tmp_path), tiny(train__num_steps=999)) == {
          "train.num_steps": (300, 999)}
  with pytest.raises(ValueError, match=r"latent_dim: 8 -> 16"):
    trainer_lib.Trainer(tiny(latent_dim=16), str(tmp_path))


def test_replica_difference_detects_diverged_copies():

  class TwoCopies:

    def experimental_local_results(self, value):
      return value

  same = [tf.Variable([1.0, 2.0]), tf.Variable([1.0, 2.0])]
  different = [tf.Variable([1.0, 2.0]), tf.Variable([1.0, 2.5])]
  assert trainer_lib.replica_max_abs_difference(TwoCopies(), [same]) == 0.0
  assert trainer_lib.replica_max_abs_difference(
      TwoCopies(), [same, different]) == pytest.approx(0.5)


# --- real runs ------------------------------------------------------------


# TF warns when a distributed dataset is iterated inside tf.function.
TF_DATA_OPTIONS_WARNING = "ignore:To make it possible to preserve tf.data"


@pytest.mark.filterwarnings(TF_DATA_OPTIONS_WARNING)
def test_tfds_cifar10_through_the_trainer_under_mock_data(tmp_path):
  data_dir = str(tmp_path / "tfds")
  write_cifar10_metadata(data_dir)
  config = tiny(data__dataset="cifar10", data__data_dir=data_dir,
                data__augmentation="cifar", train__num_steps=2, **TINY_32)
  workdir = str(tmp_path / "run")
  with tfds.testing.mock_data(num_examples=16, data_dir=data_dir):
    summary = training.train_and_evaluate(config, workdir)
  assert summary["step"] == 2 and summary["dataset"] == "cifar10"
  assert summary["evaluations"][-1]["num_images"] == 8  # One eval batch.
  assert np.isfinite(summary["evaluations"][-1]["bpd"])
  assert checkpoints.latest_checkpoint(workdir).endswith("ckpt-2")
  assert "samples_t0.7.png" in outputs(workdir)


@pytest.mark.filterwarnings(TF_DATA_OPTIONS_WARNING)
@pytest.mark.skipif(not os.path.exists(CIFAR_NPZ),
                    reason=f"real CIFAR subset absent ({CIFAR_NPZ})")
def test_loss_decreases_on_real_cifar_images(tmp_path):
  config = tiny(data__dataset="npz", data__path=CIFAR_NPZ,
                train__batch_size=16, train__num_steps=40,
                train__log_every=10, train__warmup_steps=10,
                train__learning_rate=2e-3, train__eval_every=1000,
                **TINY_32)
  workdir = str(tmp_path / "run")
  summary = training.train_and_evaluate(config, workdir)
  history = summary["train_history"]
  assert [h["step"] for h in history] == [10, 20, 30, 40]
  assert summary["skipped_steps"] == 0
  # 8-bit CIFAR starts near 8 bits/dim; 40 small steps win well over 0.5.
  assert history[-1]["bpd"] < history[0]["bpd"] - 0.5, history

  config_, model, step = checkpoints.restore_from_workdir(workdir)
  assert step == 40 and config_ == config and model.is_initialized
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["data"]["path"] == CIFAR_NPZ
  images, _ = data.load_arrays(config, "test", max_examples=4)
  z, _, v = model.encode(images)
  np.testing.assert_array_equal(model.decode(z, v).numpy(), images)

  # A config.json edited to another architecture no longer fits.
  configs.save(configs.override(config, {"decoder.hidden_channels":
                                         "[8, 24, 16]"}),
               os.path.join(workdir, "config.json"))
  with pytest.raises(ValueError, match="does not fit"):
    checkpoints.restore_from_workdir(workdir)
  # Every glow variable is in a glvae checkpoint, which holds more.
  glow = configs.override(config, {})
  glow.model = "glow"
  configs.save(glow, os.path.join(workdir, "config.json"))
  with pytest.raises(ValueError, match="holds .* model variables"):
    checkpoints.restore_from_workdir(workdir)


def test_progress_bar_and_log_lines(capsys):
  values = {"loss": 3.5, "learning_rate": 1e-3, "images_per_second": 120.0}
  summaries.Progress(10, interactive=True).update(5, values)
  assert "5/10" in capsys.readouterr().out
  with mock.patch.object(summaries.logging, "info") as info:
    summaries.Progress(10, initial_step=2, interactive=False).update(
        4, values)
  text = info.call_args[0][0] % info.call_args[0][1:]
  assert text.startswith("step 4/10 | loss 3.5000 | learning_rate 1.00e-03")
