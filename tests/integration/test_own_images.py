"""A newcomer's own images through every command: grayscale 28x28 (MNIST-
like) and 4-channel 16x16 .npz files, trained with `train.main`, evaluated
with `train.evaluate --task=all`, exported with `export.main` (TF Lite
included), with exact round trips at the user's own size.

Slow (about 4 CPU-minutes): `python -m pytest -q -m slow
tests/integration/test_own_images.py`.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from train_testlib import REPO

pytestmark = pytest.mark.slow


def _run(module, *args):
  result = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=1800,
                          check=False)
  assert result.returncode == 0, (module, result.stderr[-4000:])
  return result


def _digits_like(count, size, channels, seed):
  """Strokes on black, 10 classes: enough structure to learn something."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, count)
  images = np.zeros((count, size, size, channels), np.uint8)
  for image, label in zip(images, labels):
    row = 2 + label * (size - 6) // 10
    image[row:row + 3, 3:size - 3] = 255
    image[3:size - 3, 2 + (9 - label) * (size - 6) // 10:][:, :2] = 180
  noise = rng.integers(0, 30, images.shape, dtype=np.uint8)
  return np.maximum(images, noise), labels


@pytest.mark.parametrize("size,channels", [(28, 1), (16, 4)])
def test_own_images_train_evaluate_and_export(tmp_path, size, channels):
  npz = str(tmp_path / "images.npz")
  x_train, y_train = _digits_like(256, size, channels, 0)
  x_test, y_test = _digits_like(64, size, channels, 1)
  np.savez(npz, x_train=x_train, y_train=y_train, x_test=x_test,
           y_test=y_test)
  workdir = str(tmp_path / "run")
  _run("train.main", "--config=tiny", f"--workdir={workdir}",
       "--dataset=npz", f"--data_path={npz}", "--num_steps=30",
       "--batch_size=32", "--strategy=one_device",
       "--set", f"model.image_size={size}",
       "--set", f"model.channels={channels}",
       "--set", "train.init_batch_size=64", "--set", "train.log_every=10",
       "--set", "train.eval_every=30", "--set", "train.sample_every=30")
  with open(os.path.join(workdir, "train_summary.json")) as f:
    summary = json.load(f)
  history = summary["train_history"]
  assert history[-1]["bpd"] < history[0]["bpd"], history
  samples = tf.io.decode_png(tf.io.read_file(
      os.path.join(workdir, "samples_t0.7.png"))).numpy()
  factor = -(-96 // size)  # Cells of at least 96 px.
  side = 4 * size * factor + 5 * 2
  # Under the title: 4 x 4 cells, as wide as the figure.
  assert samples.shape[1:] == (side, channels) and samples.shape[0] > side

  _run("train.evaluate", f"--workdir={workdir}", "--task=all",
       "--num_images=8", "--num_pairs=2", "--num_interpolations=1",
       "--probe_max_train=128", "--probe_max_test=64")
  eval_dir = os.path.join(workdir, "eval")
  with open(os.path.join(eval_dir, "reconstructions.json")) as f:
    reconstructions = json.load(f)
  assert reconstructions["num_exact"] == reconstructions["num_images"]
  with open(os.path.join(eval_dir, "bpd_test.json")) as f:
    bpd = json.load(f)
  assert bpd["num_images"] == 64 and np.isfinite(bpd["bpd"])

  export_dir = str(tmp_path / "export")
  _run("export.main", f"--workdir={workdir}", f"--export_dir={export_dir}",
       "--tflite=float32", "--version=1")
  loaded = tf.saved_model.load(os.path.join(export_dir, "tfglv", "1"))
  encoded = loaded.signatures["encode"](images=tf.constant(x_test[:4]))
  assert encoded["v"].shape == (4, size, size, channels)
  decoded = loaded.signatures["decode"](z=encoded["z"], v=encoded["v"])
  np.testing.assert_array_equal(decoded["images"].numpy(), x_test[:4])
