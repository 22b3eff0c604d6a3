"""The export of a run: its layout and record, and the errors that stop it
before anything is published.

The layout test reads the shared export of a stand-in trained tiny run made
through the real command line (see export_testlib).
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import export_testlib
import tfglv
from tfglv.export_lib import demo_run
from tfglv.export_lib import exporter
from tfglv.export_lib import signatures
from tfglv.export_lib import warmup


call = export_testlib.call  # a signature of a loaded SavedModel


def test_layout_and_export_info(run):
  version_dir = run.version_dir
  for path in ("saved_model.pb", "variables", warmup.WARMUP_FILE,
               exporter.INFO_FILE):
    assert os.path.exists(os.path.join(version_dir, path)), path
  requests_dir = os.path.join(version_dir, exporter.REQUESTS_DIR)
  assert sorted(os.listdir(requests_dir)) == sorted(
      f"{name}.json" for name in signatures.SIGNATURE_NAMES)
  # The staging directory was renamed into place, not left behind.
  # The version, and the lock that reserved it (TF Serving ignores names
  # that are not integers).
  assert sorted(os.listdir(os.path.dirname(version_dir))) == [".tfglv.lock",
                                                              "1"]
  with open(os.path.join(version_dir, exporter.INFO_FILE)) as f:
    info = json.load(f)
  assert info["step"] == 100 and info["version"] == 1
  assert info["serving_default"] == "encode"
  assert info["signatures"]["decode"] == {
      "inputs": {"z": "float32 [N, 8]", "v": "float32 [N, 32, 32, 3]"},
      "outputs": {"images": "uint8 [N, 32, 32, 3]"}}
  assert info["signatures"]["interpolate"]["outputs"] == {
      "images": "uint8 [N, A, B, 32, 32, 3]"}
  assert tfglv.configs.from_dict(info["config"]) == run.config


def test_workdir_errors_name_the_problem(tmp_path):
  models = str(tmp_path / "models")
  with pytest.raises(ValueError, match="not a training workdir"):
    exporter.export_from_workdir(str(tmp_path / "nothing"), models)
  workdir = str(tmp_path / "run")
  os.makedirs(workdir)
  tfglv.configs.save(tfglv.configs.get("tiny"),
                     os.path.join(workdir, "config.json"))
  with pytest.raises(ValueError, match="has no checkpoint in"):
    exporter.export_from_workdir(workdir, models)
  images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3),
                                             dtype=np.uint8)
  demo_run.write_demo_workdir(workdir, tfglv.configs.get("tiny"), images)
  # A smaller model: every variable found, yet the checkpoint has more.
  tfglv.configs.save(tfglv.configs.get("tiny", model="glow"),
                     os.path.join(workdir, "config.json"))
  with pytest.raises(ValueError, match=r"holds \d+ model variables, the "
                     r"config's model has \d+"):
    exporter.export_from_workdir(workdir, models)
  # Other widths: shapes differ.
  tfglv.configs.save(
      tfglv.configs.get("tiny", decoder__hidden_channels=[8, 16, 32]),
      os.path.join(workdir, "config.json"))
  with pytest.raises(ValueError, match="does not fit the model"):
    exporter.export_from_workdir(workdir, models)
  # Nothing was published, not even a staging directory.
  assert not os.path.exists(models) or not os.listdir(
      os.path.join(models, "tfglv"))


@pytest.mark.slow
def test_export_of_a_real_training_run(tmp_path):
  images = export_testlib.cifar_images("test", 64)
  if images is None:
    pytest.skip(f"CIFAR-10 subset not found at {export_testlib.CIFAR}.")
  import tfglv.training  # pylint: disable=g-import-not-at-top
  config = tfglv.configs.override(export_testlib.tiny_32_config(), {
      "data.dataset": "npz", "data.path": export_testlib.CIFAR,
      "train.num_steps": "20", "train.checkpoint_every": "20",
      "train.eval_every": "20", "train.eval_batches": "1",
      "train.sample_every": "20", "train.strategy": "one_device"})
  workdir = str(tmp_path / "run")
  tfglv.training.train_and_evaluate(config, workdir)
  result = exporter.export_from_workdir(workdir, str(tmp_path / "models"),
                                        tflite_variants=["float32"])
  assert result.step == 20 and result.version == 1
  assert result.tflite_report["float32"]["decode"]["max_pixel_error"] <= 1
  loaded = tf.saved_model.load(result.saved_model_dir)
  encoded = call(loaded, "encode", images=images)
  np.testing.assert_array_equal(
      call(loaded, "decode", z=encoded["z"], v=encoded["v"])["images"], images)
