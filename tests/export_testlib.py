"""One export shared by the export tests (built once per pytest process).

A stand-in trained run of the "tiny" config at 32x32 (image_size=32 and a
third encoder level, so real CIFAR-10 images fit uncropped), ActNorm
initialised on CIFAR-10 training images (synthetic ones if the data is
absent), exported through the real command line with every TF Lite
variant.
"""

import atexit
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

import tfglv
from tfglv.data import synthetic
from tfglv.export_lib import demo_run

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CIFAR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                     "shared", "data", "cifar10_subset.npz")
MODEL_NAME = "tfglv"
TFLITE_VARIANTS = ("float32", "float16", "dynamic_range")
# About 1 min of CPU; generous because the machine may be shared.
EXPORT_TIMEOUT_SECONDS = 1800


def cifar_images(split: str, count: int):
  """uint8 [count, 32, 32, 3] from the CIFAR-10 subset, or None if absent."""
  if not os.path.exists(CIFAR):
    return None
  with np.load(CIFAR) as data:
    return data[f"x_{split}"][:count]


def tiny_32_config(model: str = "glvae"):
  return tfglv.configs.get("tiny", model=model, image_size=32,
                           encoder__channels=[8, 8, 8])


def run_python(args, cwd=None, timeout=900):
  """Runs `python args...`; returns the CompletedProcess (text output)."""
  return Background([sys.executable, *args], cwd=cwd).result(timeout)


class Background:
  """A command started now whose result is collected later.

  TF's import dominates every subprocess, so the export tests start theirs
  together and overlap them.
  """

  def __init__(self, command, cwd=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)
    self._process = subprocess.Popen(
        command, cwd=cwd or REPO, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    self._result = None
    # A test that fails before collecting the result must not leave it.
    atexit.register(self._stop)

  def _stop(self):
    if self._process.poll() is None:
      self._process.kill()
      self._process.communicate()

  def result(self, timeout=900) -> subprocess.CompletedProcess:
    if self._result is None:
      try:
        stdout, stderr = self._process.communicate(timeout=timeout)
      except subprocess.TimeoutExpired:
        self._stop()
        raise
      self._result = subprocess.CompletedProcess(
          self._process.args, self._process.returncode, stdout, stderr)
    return self._result


@dataclasses.dataclass
class ExportedRun:
  root: str
  workdir: str
  export_dir: str
  config: object
  version_dir: str


def _temporary_root(prefix: str) -> str:
  root = tempfile.mkdtemp(prefix=prefix)
  atexit.register(shutil.rmtree, root, True)
  return root


_SHARED = {}


def exported_run() -> ExportedRun:
  """The shared export; a failure is remembered, not retried per test."""
  if "error" in _SHARED:
    raise AssertionError(f"The shared export failed: {_SHARED['error']}")
  if "run" not in _SHARED:
    try:
      _SHARED["run"] = _export()
    except Exception as e:  # pylint: disable=broad-except
      _SHARED["error"] = e
      raise
  return _SHARED["run"]


def _export() -> ExportedRun:
  root = _temporary_root("tfglv_export_test_")
  workdir = os.path.join(root, "run")
  export_dir = os.path.join(root, "models")
  config = tiny_32_config()
  images = cifar_images("train", 64)
  if images is None:
    images = synthetic.generate(64, 32, 3, seed=0)["image"]
  demo_run.write_demo_workdir(workdir, config, images)
  process = run_python(["-m", "export.main", f"--workdir={workdir}",
                        f"--export_dir={export_dir}",
                        f"--model_name={MODEL_NAME}",
                        f"--tflite={','.join(TFLITE_VARIANTS)}"],
                       timeout=EXPORT_TIMEOUT_SECONDS)
  if process.returncode:
    raise AssertionError(f"export.main failed:\n{process.stderr[-5000:]}")
  return ExportedRun(root, workdir, export_dir, config,
                     os.path.join(export_dir, MODEL_NAME, "1"))


def loaded_saved_model():
  """The shared export loaded by TF's loader in this process (once)."""
  if "loaded" not in _SHARED:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    _SHARED["loaded"] = tf.saved_model.load(exported_run().version_dir)
  return _SHARED["loaded"]


def call(loaded, name: str, **inputs):
  """Runs signature `name` of a loaded SavedModel on arrays; numpy outputs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  outputs = loaded.signatures[name](
      **{key: tf.constant(value) for key, value in inputs.items()})
  return {key: value.numpy() for key, value in outputs.items()}
