"""The evaluation commands (bits/dim, FID, the task dispatcher) on a tiny run
trained for a few steps (see tests/evaluation/conftest.py).

The figures are tested in test_figures.py, the probe in
test_probe_command.py, the command line in tests/train/test_evaluate.py.
"""

import csv
import json
import math
import os

import keras
import numpy as np
import pytest

import evaluation_testlib
import tfglv
from tfglv import data
from tfglv.evaluation import commands
from tfglv.evaluation import fid
from tfglv.evaluation import representations
from tfglv.evaluation import runs
from tfglv.export_lib import demo_run

SIZE = evaluation_testlib.SIZE


# ------------------------------------------------------------------ options
def test_options_and_tasks_are_checked_before_restoring(tmp_path):
  missing = str(tmp_path / "nowhere")
  bad = [
      (dict(split="validation"), "Unknown split 'validation'; allowed: train"),
      (dict(temperatures=(0.7, 0.0)), "temperatures must be finite and > 0"),
      (dict(temperatures=(-1.0,)), "temperatures must be finite and > 0"),
      (dict(temperatures=()), "at least one value > 0"),
      (dict(fid_temperature=0.0), "temperatures must be finite and > 0"),
      (dict(posterior_samples=0), "posterior_samples must be >= 1"),
      (dict(probe_C=0.0), "probe_C must be > 0"),
      (dict(probe_max_train=0), "probe_max_train must be >= 1"),
  ]
  for overrides, message in bad:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
      commands.run_tasks(missing, ["bpd"],
                         commands.EvaluationOptions(**overrides))
  with pytest.raises(ValueError, match="Unknown or missing tasks"):
    commands.run_tasks(missing, ["bpd", "likelihood"])
  assert commands.resolve_tasks(["all"], fid_available=False) == (
      "bpd", "samples", "reconstructions", "switch", "interpolate", "probe")
  assert commands.resolve_tasks(["all"], fid_available=True) == commands.TASKS
  assert commands.resolve_tasks(["probe", "bpd", "probe"], False) == (
      "probe", "bpd")


def test_missing_workdir_or_checkpoint_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    commands.run_tasks(str(tmp_path / "nowhere"), ["samples"])
  with pytest.raises(ValueError, match="A workdir is required"):
    commands.run_tasks("", ["samples"])
  with pytest.raises(ValueError, match="has no config.json"):
    commands.run_tasks(str(tmp_path), ["samples"])
  tfglv.configs.save(evaluation_testlib.tiny_config(),
                     str(tmp_path / "config.json"))
  with pytest.raises(ValueError, match="has no checkpoint"):
    commands.run_tasks(str(tmp_path), ["samples"])
  with pytest.raises(ValueError, match="does not exist"):
    runs.load_run(str(tmp_path), checkpoint=str(tmp_path / "ckpt-7"))


# ---------------------------------------------------------------- bits/dim
def test_bits_per_dim_tables_and_bounds(run, trained_workdir):
  result = commands.evaluate_bits_per_dim(
      run, "test", posterior_samples=3, max_examples=20, batch_size=8,
      progress=True)
  assert result["num_images"] == 20 and result["posterior_samples"] == 3
  # A 3-step model is near the 8 bits/dim of uniform noise, well above 0.
  assert 1.0 < result["bpd"] < 12.0
  assert result["iw_bpd"] <= result["bpd"] + 1e-6  # Jensen, per image.
  assert result["bpd"] == pytest.approx(result["nll"] + result["kl"],
                                        abs=1e-4)
  assert result["bpd_stderr"] > 0.0  # (a Monte Carlo KL may dip below 0)
  lines = result["table"].splitlines()
  assert "20 images, k = 3" in lines[0]
  assert lines[2].split()[-2] == f"{result['bpd']:.4f}"
  assert lines[3].split()[-2] == f"{result['iw_bpd']:.4f}"
  with open(os.path.join(trained_workdir, "eval", "bpd_test.json")) as f:
    assert json.load(f) == pytest.approx(result)
  with open(os.path.join(trained_workdir, "eval", "bpd_test.csv")) as f:
    rows = list(csv.reader(f))
  assert rows[0] == ["metric", "bits_per_dim", "stderr"]
  assert [r[0] for r in rows[1:]] == ["bpd", "iw_bpd", "nll", "kl"]
  assert float(rows[1][1]) == pytest.approx(result["bpd"])
  # The global code's diagnostics over the same 20 images.
  assert result["kl_bits_per_image"] == pytest.approx(
      result["kl"] * SIZE * SIZE * 3)
  assert result["diagnostic_images"] == 20
  assert result["latent_dim"] == run.model.latent_dim
  means, _ = run.model.posterior(data.load_arrays(run.config, "test", 20)[0])
  assert result["active_units"] == int(np.sum(
      np.var(means.numpy().astype(np.float64), axis=0) > 0.01))
  assert 0.0 <= result["mutual_information_bits"] <= math.log2(20) + 0.1
  assert lines[7].startswith("Global code z: KL ")
  # A 3-step encoder still outputs ~N(0, 0.01^2): near collapse, said so.
  assert lines[-1].startswith("WARNING: the global code z is near collapse "
                              "on the test split")

  # One posterior sample: the importance-weighted bound is the ELBO.
  single = commands.evaluate_bits_per_dim(run, "train", posterior_samples=1,
                                          max_examples=8, progress=False)
  assert single["split"] == "train" and single["num_images"] == 8
  assert single["iw_bpd"] == pytest.approx(single["bpd"], abs=1e-5)

  # The trainer's own evaluation (first 16 test images, k = 5, other noise).
  with open(os.path.join(trained_workdir, "train_summary.json")) as f:
    trainer_evaluation = json.load(f)["evaluations"][-1]
  trainer_bpd = trainer_evaluation["bpd"]
  assert trainer_evaluation["kl_bits_per_image"] == pytest.approx(
      trainer_evaluation["kl"] * SIZE * SIZE * 3)
  assert trainer_evaluation["collapse_warning"].startswith(
      "WARNING: the global code z is near collapse at step 3")
  ours = commands.evaluate_bits_per_dim(run, "test", posterior_samples=5,
                                        max_examples=16, progress=False)
  assert ours["bpd"] == pytest.approx(trainer_bpd, abs=0.02)


@pytest.mark.parametrize("variant", ["glow", "glow_original"])
def test_glow_has_no_global_code_to_probe_or_switch(tmp_path, variant):
  # A stand-in run (no training needed): the layout, not the numbers, counts.
  config = tfglv.configs.override(tfglv.configs.get("tiny", model=variant),
                                  {"data.synthetic_size": "256"})
  images, _ = data.load_arrays(config, "train", max_examples=32)
  workdir = str(tmp_path / variant)
  demo_run.write_demo_workdir(workdir, config, images)
  options = commands.EvaluationOptions(num_pairs=2, probe_max_train=128,
                                       progress=False)
  # Asked for by name, the switch stops before any task with the reason.
  with pytest.raises(ValueError, match="--task=switch needs a global code z, "
                     f"but .* is a '{variant}' run, which has none"):
    commands.run_tasks(workdir, ["probe", "switch"], options)
  assert not os.path.exists(os.path.join(workdir, "eval", "probe.json"))
  assert commands.switch_score.runnable_tasks(
      runs.load_run(workdir), ("bpd", "switch"), {"all"}) == ("bpd",)
  results = commands.run_tasks(workdir, ["probe"], options)
  probed = results["probe"]
  assert probed["representations"] == ["v", "raw pixels"]
  z_row = next(l for l in probed["table"].splitlines() if l.startswith("z "))
  assert z_row.split()[1] == "-"


# ---------------------------------------------------------------------- FID
def _small_feature_network():
  network = keras.Sequential([
      keras.Input((SIZE, SIZE, 3)),
      keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
      keras.layers.GlobalAveragePooling2D()])
  return lambda images: network(np.asarray(images, np.float32) / 255.0)


def test_fid_with_a_small_random_network(run, trained_workdir):
  feature_fn = _small_feature_network()
  options = commands.EvaluationOptions(fid_num_samples=24, max_examples=32,
                                       fid_temperature=0.8, seed=5)
  result = commands.run_tasks(trained_workdir, ["fid"], options,
                              feature_fn=feature_fn, run=run)["fid"]
  assert result["num_samples"] == 24 and result["num_real"] == 32
  real, _ = data.load_arrays(run.config, "test", max_examples=32)
  samples = representations.sample_in_batches(run.model, 24, 0.8, seed=5)
  expected = fid.compute_fid(real, samples, feature_fn)
  assert result["fid"] == pytest.approx(expected, rel=1e-6)
  assert result["fid"] > 0.0
  with open(os.path.join(trained_workdir, "eval", "fid.json")) as f:
    assert json.load(f)["fid"] == pytest.approx(result["fid"])


def test_fid_rejects_a_weights_file_of_the_wrong_shape(trained_workdir,
                                                        tmp_path):
  other = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
  path = str(tmp_path / "not_inception.weights.h5")
  other.save_weights(path)
  options = commands.EvaluationOptions(inception_weights=path)
  with pytest.raises(ValueError, match="holds 2 arrays but the expected"):
    commands.run_tasks(trained_workdir, ["fid"], options)
  with pytest.raises(ValueError, match="FID needs InceptionV3 weights"):
    commands.inception_feature_fn("")


def _copy_of(workdir, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  copy = str(tmp_path / "run")
  shutil.copytree(workdir, copy)
  shutil.rmtree(os.path.join(copy, "eval"), ignore_errors=True)
  return copy


def test_an_unwritable_output_is_refused_before_any_work(trained_workdir,
                                                         tmp_path,
                                                         monkeypatch):
  workdir = _copy_of(trained_workdir, tmp_path)
  # <workdir>/eval cannot be created (as root, file modes do not stop
  # writes; a file in the way does).
  with open(os.path.join(workdir, "eval"), "w") as f:
    f.write("in the way")

  def no_slow_work(*unused_args, **unused_kwargs):
    raise AssertionError("restored the model before checking the output")

  monkeypatch.setattr(runs, "load_run", no_slow_work)
  with pytest.raises(ValueError, match=r"evaluation output directory .*eval'"
                                       r" is not writable: .*; pass "
                                       r"--output_dir"):
    commands.run_tasks(workdir, ["bpd"])
  monkeypatch.undo()
  out = str(tmp_path / "elsewhere")
  results = commands.run_tasks(
      workdir, ["bpd"], commands.EvaluationOptions(
          max_examples=8, posterior_samples=1, progress=False,
          output_dir=out))
  assert np.isfinite(results["bpd"]["bpd"])
  assert os.path.exists(os.path.join(out, "bpd_test.json"))


def test_two_evaluations_of_one_output_directory_exclude_each_other(
    trained_workdir, tmp_path):
  from tfglv.rundir import lock  # pylint: disable=g-import-not-at-top
  workdir = _copy_of(trained_workdir, tmp_path)
  with lock.DirectoryLock(os.path.join(workdir, "eval"), "evaluation"):
    with pytest.raises(lock.DirectoryInUseError,
                       match=rf"in use by evaluation \(pid {os.getpid()}"):
      commands.run_tasks(workdir, ["bpd"], commands.EvaluationOptions(
          max_examples=8, posterior_samples=1, progress=False))
