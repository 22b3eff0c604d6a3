"""Malformed input gets a clear error, never a crash or a hang.

Across the trainer's flags (real absl parsing and `train.main.main`, all
cases in one subprocess), the evaluation commands and the model library (in
process), and every SavedModel signature (the exported test model, loaded
with tf.saved_model.load, as TF Serving runs it). Each call runs under a
timeout. Cases cover wrong dtype, shape and rank, NaN/inf floats, empty
batches, huge batch sizes and wrong n_bits.
"""

import json
import math
import os
import subprocess
import sys
import threading

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
       "temperature must be > 0 and finite"),
      (lambda: model.sample(2, temperature=math.nan),
       "temperature must be > 0 and finite"),
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
