"""Malformed input gets a clear error, never a crash or a hang.

Across the trainer's flags (real absl parsing and `train.main.main`, all
cases in one subprocess), the evaluation commands and the model library (in
process), and every SavedModel signature (the exported test model, loaded
with tf.saved_model.load, as TF Serving runs it). Each call runs under a
timeout. Cases cover wrong dtype, shape and rank, NaN/inf floats, empty
batches, huge batch sizes and wrong n_bits.
"""

import io
import json
import math
import os
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest
import tensorflow as tf

import export_testlib
from tfglv import configs
from tfglv import model as model_lib
from tfglv.data import synthetic
from tfglv.evaluation import commands
from tfglv.export_lib import demo_run
from tfglv.export_lib import signatures
from tfglv import rundir

from train_testlib import REPO

CALL_TIMEOUT = 300  # Seconds per in-process call; generous for a loaded box.


def call_with_timeout(function, timeout=CALL_TIMEOUT):
  """Runs `function()` in a thread; returns its exception (None if none)."""
  outcome = {}

  def target():
    try:
      function()
    except BaseException as e:  # pylint: disable=broad-except
      outcome["error"] = e

  thread = threading.Thread(target=target, daemon=True)
  thread.start()
  thread.join(timeout)
  assert not thread.is_alive(), f"hung for more than {timeout} s"
  return outcome.get("error")


def assert_clear_error(function, error_types, message, case=""):
  error = call_with_timeout(function)
  assert error is not None, f"{case} accepted; expected {message!r}"
  assert isinstance(error, error_types), (case, type(error), str(error)[:2000])
  assert message in str(error), (case, str(error)[:2000])


# ------------------------------------------------------------ trainer flags

# Run inside one fresh process: argv, then main(), as absl's app.run would;
# app.run turns UsageError and flag errors into a message and exit code 1.
FLAGS_DRIVER = r"""
import json, sys
from absl import app, flags
from train import main as train_main
train_main.define_flags()
results = []
for argv in json.loads(sys.argv[1]):
  flags.FLAGS.unparse_flags()
  try:
    flags.FLAGS(train_main.rewrite_config_flags(["train.main"] + argv))
    train_main.main(["train.main"])
    results.append(["accepted", ""])
  except (app.UsageError, flags.Error) as e:
    results.append(["usage error", str(e)])
  except BaseException as e:
    results.append(["crash " + type(e).__name__, str(e)])
print("RESULTS " + json.dumps(results))
"""


def trainer_flag_cases(tmp_path):
  """(argv, expected message) for the trainer; none may start training."""
  workdir = str(tmp_path / "run")
  float_npz = str(tmp_path / "float.npz")
  np.savez(float_npz, x_train=np.zeros((8, 16, 16, 3), np.float32),
           x_test=np.zeros((8, 16, 16, 3), np.float32))
  existing = str(tmp_path / "existing")  # A run of the 8-bit tiny model.
  os.makedirs(existing)
  rundir.save_config(existing, configs.get("tiny"))
  a_file = str(tmp_path / "a_file")
  with open(a_file, "w") as f:
    f.write("not a directory")
  at = f"--workdir={workdir}"
  return [
      ([at, "--set", "n_bits=0"], "n_bits must be an integer in [1, 8]; got 0"),
      ([at, "--set", "n_bits=9"], "n_bits must be an integer in [1, 8]; got 9"),
      ([at, "--set", "n_bits=7.5"],
       "Cannot parse '7.5' for config field 'n_bits'"),
      ([f"--workdir={existing}", "--set", "n_bits=5"],
       "holds a run of a different model; its config.json differs in "
       "model.n_bits: 8 -> 5"),
      ([at, "--batch_size=0"], "train.batch_size must be >= 1; got 0"),
      ([at, "--batch_size=-8"], "train.batch_size must be >= 1; got -8"),
      ([at, "--batch_size=1000000"],
       "train.batch_size 1000000 exceeds the 2048 training images"),
      ([at, "--batch_size=eight"], "invalid literal for int()"),
      ([at, "--learning_rate=nan"],
       "train.learning_rate must be a finite number; got nan"),
      ([at, "--learning_rate=inf"],
       "train.learning_rate must be a finite number; got inf"),
      ([at, "--learning_rate=-0.001"], "learning_rate must be finite and > 0"),
      ([at, "--set", "train.grad_clip_norm=nan"],
       "train.grad_clip_norm must be a finite number"),
      ([at, "--config.train.beta1=1.5"], "train.beta1 must be in [0, 1)"),
      ([at, "--set", "train.epsilon=0"], "train.epsilon must be > 0"),
      ([at, "--num_steps=-5"], "train.num_steps must be >= 1; got -5"),
      ([at, "--checkpoint_every=0"], "train.checkpoint_every must be >= 1"),
      ([at, "--set", "train.grad_accumulation=3"],
       "is not divisible by train.grad_accumulation 3"),
      ([at, "--strategy=tpu"], "value should be one of"),
      ([at, "--set", "image_size=18"], "image_size 18 cannot be divided"),
      ([at, "--set", "image_size=24", "--set", "encoder.channels=[8, 8, 8, 8]"],
       "The encoder with 4 levels halves the image 4 times; 24x24 does not "
       "halve to a map of at least 2x2 that often: use 1 or 2 or 3 levels"),
      ([at, "--set", "latent_dim=7"], "latent_dim must be an even integer"),
      ([at, "--set", "encoder.channels=[8, 8"],
       "Cannot parse '[8, 8' for config field 'encoder.channels'"),
      ([at, "--dataset=npz", f"--data_path={float_npz}"], "uint8"),
      ([f"--workdir={a_file}/run"], "is not writable"),
  ] + bad_data_and_config_cases(tmp_path)


def _npy(array, shape=None):
  """An .npy member of `array` whose header may claim another shape."""
  header = np.lib.format.header_data_from_array_1_0(array)
  header["shape"] = shape or array.shape
  member = io.BytesIO()
  np.lib.format.write_array_header_1_0(member, header)
  member.write(array.tobytes())
  return member.getvalue()


def _hostile_npz_files(directory):
  """{kind: path} of .npz files that are damaged or not an .npz at all."""
  images = np.zeros((20, 16, 16, 3), np.uint8)
  members = {"x_train.npy": _npy(images), "x_test.npy": _npy(images)}
  paths = {kind: os.path.join(directory, f"{kind}.npz")
           for kind in ("crc", "huge", "npy")}
  with zipfile.ZipFile(paths["huge"], "w") as archive:
    archive.writestr("x_train.npy", _npy(images, (10**9, 16, 16, 3)))
    archive.writestr("x_test.npy", members["x_test.npy"])
  with zipfile.ZipFile(paths["crc"], "w") as archive:
    for name, content in members.items():
      archive.writestr(name, content)
  content = bytearray(open(paths["crc"], "rb").read())
  content[content.find(b"x_test.npy") + 300] ^= 0xFF  # A byte of its data.
  with open(paths["crc"], "wb") as f:
    f.write(bytes(content))
  with open(paths["npy"], "wb") as f:  # An .npy renamed to .npz.
    np.save(f, images)
  return paths


def _folder_with_bad_images(directory, bad_files):
  """A folder of 20 PNGs and `bad_files` ({name: content})."""
  os.makedirs(directory)
  good = tf.io.encode_png(np.zeros((16, 16, 3), np.uint8)).numpy()
  for i in range(20):
    with open(os.path.join(directory, f"{i:02d}.png"), "wb") as f:
      f.write(good)
  for name, content in bad_files.items():
    with open(os.path.join(directory, name), "wb") as f:
      f.write(content)
  return directory


def _tampered_workdir(directory, **changes):
  """A workdir whose config.json is the tiny one with dotted `changes`
  (`__` for dots), as a hand edit or a damaged disk might leave it."""
  values = configs.to_dict(configs.get("tiny"))
  for dotted, value in changes.items():
    *parents, name = dotted.split("__")
    node = values
    for parent in parents:
      node = node[parent]
    node[name] = value
  os.makedirs(directory)
  with open(os.path.join(directory, "config.json"), "w") as f:
    json.dump(values, f)
  return f"--workdir={directory}"


def bad_data_and_config_cases(tmp_path):
  """Issue 14, items 5, 7, 10, 11 and 17: damaged data files and config
  values of absurd size or the wrong type, on the command line and in a
  run's config.json; each stops before anything is allocated or trained."""
  at = f"--workdir={tmp_path / 'run'}"
  npz = _hostile_npz_files(str(tmp_path))
  jpeg = tf.io.encode_jpeg(np.zeros((16, 16, 3), np.uint8)).numpy()
  folder = _folder_with_bad_images(str(tmp_path / "photos"), {
      "notes.png": b"a text file named .png", "empty.jpg": b"",
      "cut.jpg": jpeg[:len(jpeg) // 2]})
  many = _folder_with_bad_images(str(tmp_path / "many"), {
      f"cut{i:02d}.jpg": jpeg[:-1] for i in range(12)})
  return [
      # 5: unreadable images in a folder, named up front.
      ([at, "--dataset=folder", f"--data_path={folder}"],
       "3 of 23 files are not readable PNG/JPEG images - cut.jpg: truncated "
       "JPEG (no end-of-image marker at its end, and it does not decode); "
       "empty.jpg: empty (0 bytes); notes.png: not a PNG or JPEG file"),
      ([at, "--dataset=folder", f"--data_path={many}"],
       "12 of 32 files are not readable PNG/JPEG images"),
      ([at, "--dataset=folder", f"--data_path={many}"],
       "; and 2 more. Remove or repair them, or set data.on_bad_image=skip"),
      ([at, "--set", "data.on_bad_image=ignore"],
       "Unknown data.on_bad_image 'ignore'; allowed: error, skip"),
      # 7 and 17: absurd sizes, from flags and from a tampered config.json.
      ([at, "--set", "train.init_batch_size=1000000000"],
       "train.init_batch_size 1000000000 is too large: the init batch of "
       "1000000000 images of 16x16x3 would hold 768,000,000,000 pixel "
       "values, more than the 1,073,741,824 allowed"),
      ([at, "--batch_size=100000000"],
       "train.batch_size 100000000 is too large"),
      ([at, "--set", "data.synthetic_size=1000000000"],
       "data.synthetic_size must be at most 16777216; got 1000000000"),
      ([at, "--set", "latent_dim=100000000"],
       "model.latent_dim must be at most 8192; got 100000000"),
      ([at, "--set", "decoder.hidden_channels=[8, 1000000, 16]"],
       "model.decoder.hidden_channels entries must be at most 4096; got "
       "1000000"),
      ([at, "--set", "prior.hidden_units=1000000"],
       "model.prior.hidden_units must be at most 4096"),
      ([at, "--set", "image_size=1048576"],
       "model.image_size must be at most 2048; got 1048576"),
      ([at, "--set", "decoder.num_steps=[1, [100000, 1], 1]"],
       "has 100003 Glow steps in all; at most 1024 are allowed"),
      ([at, "--set", "train.eval_posterior_samples=1000000"],
       "train.eval_posterior_samples must be at most 256"),
      ([at, "--set", "train.figure_scale=100000"],
       "train.figure_scale 100000 would enlarge 16x16 images to 1600000 px "
       "cells"),
      ([_tampered_workdir(tmp_path / "huge_init",
                          train__init_batch_size=10**9)],
       "train.init_batch_size 1000000000 is too large"),
      ([_tampered_workdir(tmp_path / "huge_latent",
                          model__latent_dim=10**8)],
       "model.latent_dim must be at most 8192; got 100000000"),
      ([_tampered_workdir(tmp_path / "huge_width",
                          model__decoder__hidden_channels=[8, 10**6, 16])],
       "model.decoder.hidden_channels entries must be at most 4096"),
      # 10: damaged .npz files.
      ([at, "--dataset=npz", f"--data_path={npz['crc']}"],
       f"npz file {npz['crc']}: member 'x_test' is damaged: Bad CRC-32"),
      ([at, "--dataset=npz", f"--data_path={npz['huge']}"],
       f"npz file {npz['huge']}: member 'x_train' claims shape (1000000000, "
       f"16, 16, 3) of uint8 (768,000,000,000 bytes of data) but stores "
       f"15,360"),
      ([at, "--dataset=npz", f"--data_path={npz['npy']}"],
       f"npz file {npz['npy']} is a single .npy array (np.save), not an .npz "
       f"archive"),
      # 11: values of the wrong type.
      ([_tampered_workdir(tmp_path / "string_size", model__image_size="16")],
       "config field model.image_size must be an integer; got '16' (str)"),
      ([_tampered_workdir(tmp_path / "list_bits", model__n_bits=[8])],
       "config field model.n_bits must be an integer; got [8] (list)"),
      ([_tampered_workdir(tmp_path / "float_batch", train__batch_size=32.5)],
       "config field train.batch_size must be an integer; got 32.5"),
      ([_tampered_workdir(tmp_path / "train_not_object", train=5)],
       "config section train must be an object of fields; got 5"),
      ([at, "--set", 'decoder.hidden_channels=[8, "x", 16]'],
       "config field model.decoder.hidden_channels must be a list of "
       "integers; got [8, 'x', 16]"),
      ([at, "--set", "decoder.num_steps=[1, [1, 1.5], 1]"],
       "config field model.decoder.num_steps must be a list of integers or "
       "lists of integers"),
  ]


def test_trainer_flags(tmp_path):
  cases = trainer_flag_cases(tmp_path)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("PYTHONPATH", None)
  result = subprocess.run(
      [sys.executable, "-c", FLAGS_DRIVER, json.dumps([a for a, _ in cases])],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
      check=False)
  assert result.returncode == 0, result.stderr[-5000:]
  line = [l for l in result.stdout.splitlines() if l.startswith("RESULTS ")]
  outcomes = json.loads(line[-1][len("RESULTS "):])
  assert len(outcomes) == len(cases)
  for (argv, message), (kind, text) in zip(cases, outcomes):
    assert kind == "usage error" and message in text, (argv, kind, text)
  assert not os.path.exists(tmp_path / "run" / "config.json")


# ------------------------------------------------------ evaluation commands


@pytest.fixture(scope="module")
def demo_workdir(tmp_path_factory):
  """A stand-in run of the 16x16 tiny config (no training needed here)."""
  workdir = str(tmp_path_factory.mktemp("eval_run") / "run")
  config = configs.get("tiny")
  images = synthetic.generate(32, 16, 3, seed=0)["image"]
  demo_run.write_demo_workdir(workdir, config, images, step=4)
  return workdir


def evaluation_cases(workdir, tmp_path):
  options = commands.EvaluationOptions
  bad_checkpoint = os.path.join(str(tmp_path), "copy", "checkpoints", "ckpt-4")
  return [
      (dict(tasks=["bogus"]), "Unknown or missing tasks ['bogus']"),
      (dict(tasks=[]), "Unknown or missing tasks"),
      (dict(options=options(batch_size=0)), "batch_size must be >= 1"),
      (dict(options=options(posterior_samples=0)),
       "posterior_samples must be >= 1"),
      (dict(options=options(temperatures=(math.nan,))),
       "temperatures must be finite and > 0"),
      (dict(options=options(temperatures=(math.inf,))),
       "temperatures must be finite and > 0"),
      (dict(options=options(temperatures=(-0.7,))),
       "temperatures must be finite and > 0"),
      (dict(options=options(fid_temperature=math.nan)),
       "temperatures must be finite and > 0"),
      (dict(options=options(split="validation")), "validation"),
      (dict(options=options(max_examples=-1)), "max_examples must be >= 1"),
      (dict(options=options(fid_num_samples=1)),
       "fid_num_samples must be >= 2"),
      (dict(options=options(probe_C=math.inf)),
       "probe_C must be > 0 and finite"),
      (dict(workdir=str(tmp_path / "missing")), "missing"),
      (dict(checkpoint=os.path.join(workdir, "checkpoints", "ckpt-999")),
       "ckpt-999' does not exist"),
      (dict(checkpoint=bad_checkpoint), "ckpt-4 is unreadable (corrupt"),
  ]


def test_evaluation_commands(demo_workdir, tmp_path):
  # A copy of the run whose checkpoint lost its second half.
  copy = tmp_path / "copy" / "checkpoints"
  copy.mkdir(parents=True)
  source = os.path.join(demo_workdir, "checkpoints")
  for name in os.listdir(source):
    with open(os.path.join(source, name), "rb") as f:
      content = f.read()
    if name.startswith("ckpt-4.data"):
      content = content[:len(content) // 2]
    (copy / name).write_bytes(content)
  configs.save(configs.get("tiny"), str(tmp_path / "copy" / "config.json"))
  for arguments, message in evaluation_cases(demo_workdir, tmp_path):
    arguments = dict(dict(workdir=demo_workdir, tasks=["bpd"]), **arguments)
    assert_clear_error(lambda: commands.run_tasks(**arguments), ValueError,
                       message)


def test_huge_evaluation_batch_is_bounded_by_the_data(demo_workdir):
  """Not an error: a batch larger than the split is the whole split."""
  options = commands.EvaluationOptions(
      batch_size=10**9, max_examples=4, posterior_samples=1, progress=False)
  results = commands.run_tasks(demo_workdir, ["bpd"], options)
  assert results["bpd"]["num_images"] == 4
  assert math.isfinite(results["bpd"]["bpd"])


# ------------------------------------------------------------ model library


def test_model_library(demo_workdir):
  _, model, _ = rundir.restore(demo_workdir)
  images = synthetic.generate(2, 16, 3, seed=1)["image"]
  z, _, v = model.encode(images)
  nan_z = z.numpy().copy()
  nan_z[0, 0] = np.nan
  inf_v = v.numpy().copy()
  inf_v[1, 2, 3, 0] = np.inf
  fresh = model_lib.build_model(model.config)
  cases = [
      (lambda: model.encode(images.astype(np.float32)),
       "images must be uint8 [N, H, W, C]"),
      (lambda: model.encode(images[0]), "images must have rank 4"),
      (lambda: model.encode(np.zeros((2, 32, 32, 3), np.uint8)),
       "images must have shape [N, 16, 16, 3]"),
      (lambda: model.encode(images[:0]), "got an empty batch"),
      (lambda: model.decode(nan_z, v), "z must be finite"),
      (lambda: model.decode(z, inf_v), "v must be finite"),
      (lambda: model.decode(z[:0], v[:0]), "got an empty batch"),
      (lambda: model.sample(2, temperature=math.inf),
       "temperature must be in (0, 10]"),
      (lambda: model.sample(2, temperature=math.nan),
       "temperature must be in (0, 10]"),
      # Finite overflow: saturated pixels, no NaN to show it.
      (lambda: model.sample(2, temperature=1e6),
       "temperature must be in (0, 10] (typically 0.7-1.0); got 1000000.0"),
      (lambda: model.decode(z * 0 + 1e30, v),
       "z must lie within +-10000 (codes of real images stay within about "
       "+-10); got a value of 1e+30"),
      (lambda: model.decode(z, v * 0 - 1e30), "v must lie within +-10000"),
      (lambda: model.interpolate(images, images, [0.0, 1e30], [0.5]),
       "z_fractions must lie in [-1, 2] (0: the first image, 1: the second)"),
      (lambda: model.interpolate(images, images, [0.5], [-3.0]),
       "v_fractions must lie in [-1, 2]"),
      (lambda: model.sample(0), "num_samples must be >= 1"),
      (lambda: model.bits_per_dim(images, num_samples=0),
       "num_samples must be >= 1"),
      (lambda: model.compute_losses(images, [1, 2, 3]),
       "seed must be an int or an int tensor of shape [2]"),
      (lambda: fresh.initialize(images[:0]), "got an empty batch"),
  ]
  for function, message in cases:
    assert_clear_error(function, ValueError, message)
  # A failed initialisation leaves the model uninitialised, not NaN.
  assert not fresh.is_initialized


# ------------------------------------------------------- SavedModel signatures


def signature_cases(config):
  size, d_z = config.model.image_size, config.model.latent_dim
  images = synthetic.generate(3, size, 3, seed=2)["image"]
  floats = lambda *shape: np.zeros(shape, np.float32)
  nan_z = floats(2, d_z)
  nan_z[1, 0] = np.nan
  inf_v = floats(2, size, size, 3)
  inf_v[0, 0, 0, 0] = -np.inf
  seed = np.array([1, 2], np.int32)
  one = np.float32(1.0)
  fractions = np.array([0.0, 1.0], np.float32)
  # (signature, inputs, expected message). Any non-uint8/float32 dtype is
  # rejected by TF's own signature check before the graph runs.
  return [
      ("encode", dict(images=images.astype(np.float32)),
       "expected to be a uint8 tensor but is a float tensor"),
      ("encode", dict(images=images[0]),
       f"encode: input images must be uint8 [N, {size}, {size}, 3]"),
      ("encode", dict(images=images[..., None]),  # Leading sizes fit.
       f"Shape of tensor images [3,{size},{size},3,1] is not compatible with "
       f"expected shape [?,{size},{size},3]"),
      ("encode", dict(images=np.zeros((2, 8, 8, 3), np.uint8)),
       f"encode: input images must be uint8 [N, {size}, {size}, 3]"),
      ("encode", dict(images=images[:0]), "encode: input images must not be "
       "empty"),
      ("decode", dict(z=nan_z, v=floats(2, size, size, 3)),
       "decode: input z must be finite; it holds NaN or inf"),
      ("decode", dict(z=floats(2, d_z), v=inf_v),
       "decode: input v must be finite"),
      ("decode", dict(z=floats(2, d_z + 1), v=floats(2, size, size, 3)),
       f"decode: input z must be float32 [N, {d_z}]"),
      ("decode", dict(z=floats(3, d_z), v=floats(2, size, size, 3)),
       "decode: inputs z and v must have the same batch size N"),
      ("decode", dict(z=floats(2, d_z),
                      v=floats(2, size, size, 3).astype(np.float64)),
       "expected to be a float tensor but is a double tensor"),
      ("decode", dict(z=floats(0, d_z), v=floats(0, size, size, 3)),
       "decode: input z must not be empty"),
      ("sample", dict(z_noise=floats(2, d_z), v_noise=floats(2, size, size, 3),
                      temperature=np.float32(0)),
       "sample: temperature must be > 0"),
      ("sample", dict(z_noise=floats(2, d_z), v_noise=floats(2, size, size, 3),
                      temperature=np.float32(np.nan)),
       "sample: "),
      ("sample", dict(z_noise=floats(2, d_z), v_noise=floats(2, size, size, 3),
                      temperature=np.float32(np.inf)),
       "sample: input temperature must be finite"),
      ("sample", dict(z_noise=floats(2, d_z), v_noise=floats(2, size, size, 3),
                      temperature=np.ones(3, np.float32)),
       "Shape of tensor temperature [3] is not compatible with expected "
       "shape []"),
      ("sample", dict(z_noise=nan_z, v_noise=floats(2, size, size, 3),
                      temperature=one),
       "sample: input z_noise must be finite"),
      ("sample", dict(z_noise=floats(1, d_z), v_noise=floats(2, size, size, 3),
                      temperature=one),
       "sample: inputs z_noise and v_noise must have the same batch size"),
      ("sample_from_seed", dict(seed=seed, num_samples=np.int32(0),
                                temperature=one),
       "sample_from_seed: num_samples must be >= 1"),
      ("sample_from_seed", dict(seed=seed, num_samples=np.int32(2**31 - 1),
                                temperature=one),
       f"num_samples must be at most {signatures.MAX_GENERATED_IMAGES}"),
      ("sample_from_seed", dict(seed=seed, num_samples=np.int32(
          signatures.MAX_GENERATED_IMAGES + 1), temperature=one),
       f"num_samples must be at most {signatures.MAX_GENERATED_IMAGES}"),
      ("sample_from_seed", dict(seed=np.array([1, 2, 3], np.int32),
                                num_samples=np.int32(2), temperature=one),
       "Shape of tensor seed [3] is not compatible with expected shape [2]"),
      ("sample_from_seed", dict(seed=seed, num_samples=np.array([2], np.int32),
                                temperature=one),
       "Shape of tensor num_samples [1] is not compatible with expected "
       "shape []"),
      ("sample_from_seed", dict(seed=seed, num_samples=np.int32(2),
                                temperature=np.float32(-1)),
       "temperature must be > 0; got] [-1]"),  # Checked by `sample`.
      ("sample_from_seed", dict(seed=seed.astype(np.int64),
                                num_samples=np.int32(2), temperature=one),
       "expected to be a int32 tensor but is a int64 tensor"),
      # Finite overflow: all-black images, no NaN to show it.
      ("decode", dict(z=floats(2, d_z) + 1e30, v=floats(2, size, size, 3)),
       "decode: input z must lie in [-10000, 10000]; got values from] [1e+30]"),
      ("decode", dict(z=floats(2, d_z), v=floats(2, size, size, 3) - 1e30),
       "decode: input v must lie in [-10000, 10000]"),
      ("sample", dict(z_noise=floats(2, d_z), v_noise=floats(2, size, size, 3),
                      temperature=np.float32(1e6)),
       "sample: input temperature must lie in (0, 10]"),
      ("sample", dict(z_noise=floats(2, d_z) + 1e30,
                      v_noise=floats(2, size, size, 3), temperature=one),
       "sample: input z_noise must lie in [-10000, 10000]"),
      ("sample_from_seed", dict(seed=seed, num_samples=np.int32(2),
                                temperature=np.float32(1e6)),
       "sample_from_seed: input temperature must lie in (0, 10]"),
      ("interpolate", dict(images_start=images, images_end=images,
                           z_fractions=np.float32([0, 1e30]),
                           v_fractions=fractions),
       "interpolate: input z_fractions must lie in [-1, 2]"),
      ("switch", dict(global_images=images[:2], local_images=images),
       "switch: inputs global_images and local_images must have the same "
       "batch size"),
      ("switch", dict(global_images=images.astype(np.int32),
                      local_images=images),
       "expected to be a uint8 tensor but is a int32 tensor"),
      ("switch", dict(global_images=images[:0], local_images=images[:0]),
       "switch: input global_images must not be empty"),
      ("interpolate", dict(images_start=images, images_end=images,
                           z_fractions=fractions[None], v_fractions=fractions),
       "Shape of tensor z_fractions [1,2] is not compatible with expected "
       "shape [?]"),
      ("interpolate", dict(images_start=images, images_end=images,
                           z_fractions=fractions,
                           v_fractions=np.array([np.nan], np.float32)),
       "interpolate: input v_fractions must be finite"),
      ("interpolate", dict(images_start=images, images_end=images,
                           z_fractions=fractions[:0], v_fractions=fractions),
       "interpolate: input z_fractions must not be empty"),
      ("interpolate", dict(images_start=images, images_end=images,
                           z_fractions=np.zeros(100, np.float32),
                           v_fractions=np.zeros(100, np.float32)),
       f"the output N x A x B must be at most "
       f"{signatures.MAX_GENERATED_IMAGES} images"),
      ("interpolate", dict(images_start=images, images_end=images[:1],
                           z_fractions=fractions, v_fractions=fractions),
       "interpolate: inputs images_start and images_end must have the same "
       "batch size"),
  ]


def test_every_saved_model_signature():
  run = export_testlib.exported_run()
  loaded = export_testlib.loaded_saved_model()
  cases = signature_cases(run.config)
  assert {name for name, _, _ in cases} == set(signatures.SIGNATURE_NAMES)
  for name, inputs, message in cases:
    function = loaded.signatures[name]
    tensors = {key: tf.constant(value) for key, value in inputs.items()}
    case = ", ".join(f"{k}: {v.dtype} {v.shape}" for k, v in inputs.items())
    assert_clear_error(lambda: function(**tensors),
                       (tf.errors.InvalidArgumentError, TypeError,
                        ValueError), message, f"{name}({case})")
  # The server keeps serving after every refusal.
  images = synthetic.generate(2, run.config.model.image_size, 3,
                              seed=3)["image"]
  encoded = loaded.signatures["encode"](images=tf.constant(images))
  decoded = loaded.signatures["decode"](z=encoded["z"], v=encoded["v"])
  np.testing.assert_array_equal(decoded["images"].numpy(), images)
