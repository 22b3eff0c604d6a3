"""The evaluation commands on a tiny run trained for a few steps.

One run of the real trainer (the `tiny` config on the embedded synthetic
dataset, 3 steps) is shared by every test; each command is checked for its
files, the shapes of its grids and tables, values in range, and agreement
with direct model calls. The command line is checked in subprocesses,
started early so they overlap the in-process tests.
"""

import csv
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfglv
from tfglv import data
from tfglv import training
from tfglv.export_lib import demo_run
from tfglv.evaluation import commands
from tfglv.evaluation import fid
from tfglv.evaluation import figures
from tfglv.evaluation import probe_command
from tfglv.evaluation import representations
from tfglv.evaluation import runs

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SIZE = 16  # tiny's image_size
PAD = 2  # grids.image_grid's default padding


def _tiny_config():
  return tfglv.configs.override(tfglv.configs.get("tiny"), {
      "data.synthetic_size": "512",  # test split: 64 images
      "train.batch_size": "16", "train.num_steps": "3",
      "train.log_every": "1", "train.checkpoint_every": "3",
      "train.eval_every": "3", "train.eval_batches": "1",
      "train.sample_every": "3", "train.init_batch_size": "64",
      "train.strategy": "one_device"})


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("evaluate") / "tiny_run")
  training.train_and_evaluate(_tiny_config(), workdir)
  return workdir




class _Command:
  """`python -m train.evaluate args...` started now, awaited by result()."""

  def __init__(self, args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    self._process = subprocess.Popen(
        [sys.executable, "-m", "train.evaluate", *args], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

  def result(self):
    stdout, stderr = self._process.communicate(timeout=600)
    return self._process.returncode, stdout, stderr


@pytest.fixture(scope="session")
def command_lines(trained_workdir, tmp_path_factory):
  # A copy, so the subprocess never writes files the tests are reading.
  copy = str(tmp_path_factory.mktemp("cli") / "run")
  shutil.copytree(trained_workdir, copy)
  return {
      "workdir": copy,
      "ok": _Command([f"--workdir={copy}", "--task=reconstructions,switch",
                      "--num_images=8", "--num_pairs=2"]),
      "temperature": _Command([f"--workdir={copy}", "--task=samples",
                               "--temperatures=0.7,0"]),
      "no_workdir": _Command([f"--workdir={copy}_missing", "--task=bpd"]),
  }


@pytest.fixture(scope="session")
def run(trained_workdir, command_lines):
  del command_lines  # Started here so the subprocesses overlap the tests.
  return runs.load_run(trained_workdir)


def _png(path):
  return tf.io.decode_png(tf.io.read_file(path)).numpy()


def _cell(grid, row, column, size=SIZE):
  top = PAD + row * (size + PAD)
  left = PAD + column * (size + PAD)
  return grid[top:top + size, left:left + size]


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
  tfglv.configs.save(_tiny_config(), str(tmp_path / "config.json"))
  with pytest.raises(ValueError, match="has no checkpoint"):
    commands.run_tasks(str(tmp_path), ["samples"])
  with pytest.raises(ValueError, match="does not exist"):
    runs.load_run(str(tmp_path), checkpoint=str(tmp_path / "ckpt-7"))


def test_check_temperatures():
  assert representations.check_temperatures(["0.7", 1]) == (0.7, 1.0)
  for bad in ([0], [float("nan")], [float("inf")], ["warm"]):
    with pytest.raises(ValueError, match="temperatures must be"):
      representations.check_temperatures(bad)


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

  # One posterior sample: the importance-weighted bound is the ELBO.
  single = commands.evaluate_bits_per_dim(run, "train", posterior_samples=1,
                                          max_examples=8, progress=False)
  assert single["split"] == "train" and single["num_images"] == 8
  assert single["iw_bpd"] == pytest.approx(single["bpd"], abs=1e-5)

  # The trainer's own evaluation (first 16 test images, k = 5, other noise).
  with open(os.path.join(trained_workdir, "train_summary.json")) as f:
    trainer_bpd = json.load(f)["evaluations"][-1]["bpd"]
  ours = commands.evaluate_bits_per_dim(run, "test", posterior_samples=5,
                                        max_examples=16, progress=False)
  assert ours["bpd"] == pytest.approx(trainer_bpd, abs=0.02)


# ------------------------------------------------------------------ figures
def test_sample_grids_per_temperature(run):
  result = figures.write_samples(run, temperatures=(0.5, 1.0), num_images=6,
                                 seed=3, batch_size=4)
  assert sorted(os.path.basename(p) for p in result["files"].values()) == [
      "samples_t0.5.png", "samples_t1.0.png"]
  grids = {t: _png(p) for t, p in result["files"].items()}
  for grid in grids.values():
    assert grid.shape == (SIZE + 2 * PAD, 6 * SIZE + 7 * PAD, 3)
  assert not np.array_equal(grids["0.5"], grids["1.0"])
  expected = representations.sample_in_batches(run.model, 6, 0.5, seed=3,
                                               batch_size=4)
  for index in range(6):
    np.testing.assert_array_equal(_cell(grids["0.5"], 0, index),
                                  expected[index])


def test_row_blocks_keep_related_images_in_one_column():
  first = np.full((10, 4, 4, 1), 1, np.uint8) * np.arange(10, dtype=np.uint8
                                                          )[:, None, None, None]
  second = first + 100
  grid = figures._pair_rows([first, second])  # pylint: disable=protected-access
  # Two blocks of 8 columns: rows (first 0-7, second 0-7, first 8-9, ...).
  assert grid.shape == (4 * 4 + 5 * PAD, 8 * 4 + 9 * PAD, 1)
  assert _cell(grid, 1, 5, size=4)[0, 0, 0] == 105
  assert _cell(grid, 2, 1, size=4)[0, 0, 0] == 9
  assert _cell(grid, 3, 1, size=4)[0, 0, 0] == 109
  assert np.all(_cell(grid, 3, 2, size=4) == 255)  # padding cell


def test_reconstructions_are_exact(run):
  result = figures.write_reconstructions(run, "test", num_images=4)
  assert result["num_exact"] == 4 and result["max_abs_difference"] == 0
  grid = _png(result["file"])
  assert grid.shape == (2 * SIZE + 3 * PAD, 4 * SIZE + 5 * PAD, 3)
  originals, _ = data.load_arrays(run.config, "test", max_examples=4)
  for index in range(4):
    np.testing.assert_array_equal(_cell(grid, 0, index), originals[index])
    np.testing.assert_array_equal(_cell(grid, 1, index), originals[index])


def test_switch_grid_swaps_global_codes(run):
  result = figures.write_switch_grid(run, "test", num_pairs=3, batch_size=2)
  assert result["rows"] == list(figures.SWITCH_ROWS)
  grid = _png(result["file"])
  assert grid.shape == (4 * SIZE + 5 * PAD, 3 * SIZE + 4 * PAD, 3)
  images, _ = data.load_arrays(run.config, "test", max_examples=6)
  z, _, v = run.model.encode(images)
  expected = {1: run.model.decode(z[3:], v[:3]).numpy(),   # (z_b, v_a)
              2: run.model.decode(z[:3], v[3:]).numpy()}   # (z_a, v_b)
  for pair in range(3):
    np.testing.assert_array_equal(_cell(grid, 0, pair), images[pair])
    np.testing.assert_array_equal(_cell(grid, 3, pair), images[3 + pair])
    for row, switched in expected.items():
      np.testing.assert_array_equal(_cell(grid, row, pair), switched[pair])
  assert 0.0 <= result["fraction_changed_by_switch"] <= 1.0
  assert result["mean_abs_difference_to_z_image"] >= 0.0


def test_interpolation_grid_follows_the_paper_footnote(run):
  assert representations.INTERPOLATION_ALPHAS == (0.0, 0.25, 0.5, 0.75, 1.0)
  assert representations.INTERPOLATION_BETAS == (
      0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
  result = figures.write_interpolation_grids(run, "test",
                                             num_interpolations=1)
  assert result["corners_exact"]
  grid = _png(result["files"][0])
  assert grid.shape == (5 * SIZE + 6 * PAD, 11 * SIZE + 12 * PAD, 3)
  images, _ = data.load_arrays(run.config, "test", max_examples=2)
  z, _, v = run.model.encode(images)
  np.testing.assert_array_equal(_cell(grid, 0, 0), images[0])
  np.testing.assert_array_equal(_cell(grid, 4, 10), images[1])
  # (alpha, beta) = (1, 0) is a switch; (0.5, 0.3) a linear mixture.
  np.testing.assert_array_equal(
      _cell(grid, 4, 0), run.model.decode(z[1:], v[:1]).numpy()[0])
  mixed = run.model.decode(0.5 * z[:1] + 0.5 * z[1:],
                           0.7 * v[:1] + 0.3 * v[1:]).numpy()[0]
  difference = np.abs(_cell(grid, 2, 3).astype(int) - mixed)
  assert difference.max() <= 1  # float32 mixing order may round differently


# -------------------------------------------------------------------- probe
def test_probe_targets_skip_missing_and_alias_duplicates():
  labels = np.array([0, 1, 2, 0])
  targets, aliases = probe_command.probe_targets(
      {"label": labels, "shape": labels.copy(), "palette": labels[::-1],
       "none": -np.ones(4, int), "constant": np.zeros(4, int)},
      {"label": labels, "shape": labels.copy(), "palette": labels,
       "none": -np.ones(4, int), "constant": np.zeros(4, int)})
  assert list(targets) == ["label", "palette"]
  assert aliases == {"label": ["shape"], "palette": []}


def test_probe_on_synthetic_factor_labels(run, trained_workdir):
  result = probe_command.run_linear_probe(run, max_train=256, max_test=64,
                                          batch_size=32)
  assert result["num_train"] == 256 and result["num_test"] == 64
  # The synthetic set's factors: "label" is the shape.
  assert result["targets"] == ["label", "palette"]
  assert result["aliases"] == {"label": ["shape"], "palette": []}
  assert result["representations"] == ["z", "v", "raw pixels"]
  _, test_labels = data.load_arrays(run.config, "test", max_examples=64)
  for name in result["targets"]:
    counts = np.bincount(test_labels[name])
    assert result["chance"][name] == pytest.approx(counts.max() / 64)
    for accuracy in result["accuracy"][name].values():
      assert 0.0 <= accuracy <= 1.0
  # The palette (background/foreground colours) is linear in the pixels.
  assert (result["accuracy"]["palette"]["raw pixels"] >
          result["chance"]["palette"] + 0.3)
  table = result["table"]
  assert "Table 4 layout, target label (= shape)" in table
  assert "59.53" in table  # the paper column
  row = next(l for l in table.splitlines()[::-1] if l.startswith("v "))
  assert row.split()[1:] == [
      f"{100 * result['accuracy'][t]['v']:.2f}" for t in result["targets"]]
  with open(os.path.join(trained_workdir, "eval", "probe.csv")) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 6
  assert float(rows[0]["accuracy"]) == result["accuracy"]["label"]["z"]


def test_glow_has_no_global_code_to_probe_or_switch(tmp_path):
  # A stand-in run (no training needed): the layout, not the numbers, counts.
  config = tfglv.configs.override(tfglv.configs.get("tiny", model="glow"),
                                  {"data.synthetic_size": "256"})
  images, _ = data.load_arrays(config, "train", max_examples=32)
  workdir = str(tmp_path / "glow")
  demo_run.write_demo_workdir(workdir, config, images)
  options = commands.EvaluationOptions(num_pairs=2, probe_max_train=128,
                                       progress=False)
  results = commands.run_tasks(workdir, ["switch", "probe"], options)
  assert results["switch"]["fraction_changed_by_switch"] == 0.0
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


# ------------------------------------------------------------ command line
def test_command_line_writes_files_and_tables(command_lines):
  code, stdout, stderr = command_lines["ok"].result()
  assert code == 0, stderr[-3000:]
  assert "== reconstructions ==" in stdout and "== switch ==" in stdout
  eval_dir = os.path.join(command_lines["workdir"], "eval")
  for name in ("reconstructions.png", "reconstructions.json", "switch.png",
               "switch.json"):
    assert os.path.exists(os.path.join(eval_dir, name)), name
  assert _png(os.path.join(eval_dir, "switch.png")).shape == (
      4 * SIZE + 5 * PAD, 2 * SIZE + 3 * PAD, 3)


def test_command_line_bad_input_exits_with_the_message(command_lines):
  for name, message in (("temperature", "temperatures must be finite and > 0"),
                        ("no_workdir", "does not exist")):
    code, _, stderr = command_lines[name].result()
    assert code != 0, name
    assert message in stderr, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
