"""In-process tests of tfglv.training.trainer (one device)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfglv import configs
from tfglv import data
from tfglv import rundir
from tfglv import training
from tfglv.training import trainer as trainer_lib

from run_testlib import write_cifar10_metadata
from train_testlib import CIFAR_SUBSET
from train_testlib import TF_DATA_OPTIONS_WARNING
from train_testlib import tiny
from train_testlib import TINY_32


def outputs(workdir):
  return sorted(os.listdir(workdir)) if os.path.isdir(workdir) else []


# --- bad input: each raises before anything is built or written ---------


def test_unwritable_workdir(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  with pytest.raises(ValueError, match="not writable"):
    trainer_lib.Trainer(tiny(), str(blocker / "run"))


def test_a_batch_that_does_not_split(tmp_path):
  with pytest.raises(ValueError, match="train.grad_accumulation 3"):
    trainer_lib.Trainer(tiny(train__grad_accumulation=3),
                        str(tmp_path / "run"))
  assert outputs(tmp_path / "run") == []


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


def test_resume_refuses_a_different_model(tmp_path):
  configs.save(tiny(), str(tmp_path / "config.json"))
  with pytest.raises(ValueError, match=r"latent_dim: 8 -> 16"):
    trainer_lib.Trainer(tiny(latent_dim=16), str(tmp_path))


# --- real runs ------------------------------------------------------------


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
  assert rundir.latest_checkpoint(workdir).endswith("ckpt-2")
  assert outputs(workdir) == [
      ".tfglv.lock", "checkpoints", "config.json", "eval", "reconstructions.png",
      "samples_t0.7.png", "samples_t1.0.png", "train", "train_summary.json"]


@pytest.mark.filterwarnings(TF_DATA_OPTIONS_WARNING)
@pytest.mark.skipif(not os.path.exists(CIFAR_SUBSET),
                    reason=f"real CIFAR subset absent ({CIFAR_SUBSET})")
def test_loss_decreases_on_real_cifar_images(tmp_path):
  config = tiny(data__dataset="npz", data__path=CIFAR_SUBSET,
                train__batch_size=16, train__num_steps=40,
                train__log_every=10, train__warmup_steps=10,
                train__learning_rate=2e-3, train__eval_every=1000,
                **TINY_32)
  workdir = str(tmp_path / "run")
  summary = training.train_and_evaluate(config, workdir)
  history = summary["train_history"]
  assert [h["step"] for h in history] == [10, 20, 30, 40]
  assert summary["skipped_steps"] == 0
  # 39 timed steps: wall and CPU seconds both counted, neither the first.
  assert 0 < summary["train_seconds_after_first_step"] < summary[
      "wall_time_seconds"]
  assert 0 < summary["train_cpu_seconds_after_first_step"]
  # 8-bit CIFAR starts near 8 bits/dim; 40 small steps win well over 0.5.
  assert history[-1]["bpd"] < history[0]["bpd"] - 0.5, history

  config_, model, step = rundir.restore(workdir)
  assert step == 40 and config_ == config and model.is_initialized
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["data"]["path"] == CIFAR_SUBSET
  images, _ = data.load_arrays(config, "test", max_examples=4)
  z, _, v = model.encode(images)
  np.testing.assert_array_equal(model.decode(z, v).numpy(), images)

  # A config.json edited to another architecture no longer fits.
  configs.save(configs.override(config, {"decoder.hidden_channels":
                                         "[8, 24, 16]"}),
               os.path.join(workdir, "config.json"))
  with pytest.raises(ValueError, match="does not fit"):
    rundir.restore(workdir)
  # Every glow variable is in a glvae checkpoint, which holds more.
  glow = configs.override(config, {"model.variant": "glow"})
  configs.save(glow, os.path.join(workdir, "config.json"))
  with pytest.raises(ValueError, match="holds .* model variables"):
    rundir.restore(workdir)


def test_a_trainer_that_fails_its_checks_leaves_no_new_workdir(
    tmp_path, monkeypatch):
  def fail(config):
    raise ValueError(f"cannot build {config.variant}")

  monkeypatch.setattr(trainer_lib.model_lib, "build_model", fail)
  workdir = str(tmp_path / "new" / "run")
  with pytest.raises(ValueError, match="cannot build glvae"):
    training.Trainer(tiny(), workdir)
  assert not os.path.exists(workdir)
  # An existing directory is the user's: it stays.
  os.makedirs(workdir)
  with pytest.raises(ValueError, match="cannot build glvae"):
    training.Trainer(tiny(), workdir)
  assert os.path.isdir(workdir)


def test_a_full_disk_during_a_save_is_one_line(tmp_path, monkeypatch):
  trainer = training.Trainer(tiny(train__num_steps=2), str(tmp_path / "run"))

  def full_disk(*unused_args, **unused_kwargs):
    raise tf.errors.ResourceExhaustedError(
        None, None, "ckpt-1_temp/part-00000; No space left on device")

  monkeypatch.setattr(trainer.checkpoint_manager, "save", full_disk)
  with pytest.raises(training.CheckpointSaveError,
                     match=r"Saving the checkpoint of step \d+ in .*checkpoints"
                           r" failed: the disk is full \(\d+ MiB free\)\. The "
                           r"earlier checkpoints are intact"):
    trainer.run()
  # The lock went with the failed run: the same workdir can be trained.
  training.Trainer(tiny(train__num_steps=2), str(tmp_path / "run")).close()
