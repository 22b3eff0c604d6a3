"""The SavedModel export: layout, specs, loaders, requests, warmup, errors.

All tests share one export of a stand-in trained tiny run made through the
real command line (see export_testlib).
"""

import glob
import json
import os
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

import export_testlib
from export import grpc_client
import tfglv
from tfglv.export_lib import demo_run
from tfglv.export_lib import exporter
from tfglv.export_lib import requests as requests_lib
from tfglv.export_lib import saved_model as saved_model_lib
from tfglv.export_lib import signatures
from tfglv.export_lib import warmup
from tfglv.training import checkpoints


@pytest.fixture(scope="module")
def run():
  return export_testlib.exported_run()


@pytest.fixture(scope="module")
def loaded(run):
  return export_testlib.loaded_saved_model()


@pytest.fixture(scope="module")
def commands(run, tmp_path_factory):
  """The command-line checks, started together (see Background)."""
  scratch = tmp_path_factory.mktemp("commands")
  images = requests_lib.example_inputs(run.config, batch_size=3)["encode"][
      "images"]
  np.save(scratch / "images.npy", images)
  (scratch / "serve_check.py").write_text(FRESH_PROCESS_SCRIPT)
  background = export_testlib.Background
  return {
      "scratch": scratch,
      "images": images,
      "show": background(["saved_model_cli", "show", "--dir",
                          run.version_dir, "--all"]),
      "run": background(
          ["saved_model_cli", "run", "--dir", run.version_dir, "--tag_set",
           "serve", "--signature_def", "encode", "--inputs",
           f"images={scratch / 'images.npy'}", "--outdir",
           str(scratch / "out")]),
      # Outside the repo, with tfglv, Keras and TFP made unimportable.
      "fresh": background([sys.executable, str(scratch / "serve_check.py"),
                           run.version_dir], cwd=str(scratch)),
  }


def call(loaded, name, **inputs):
  outputs = loaded.signatures[name](
      **{key: tf.constant(value) for key, value in inputs.items()})
  return {key: value.numpy() for key, value in outputs.items()}


def test_layout_and_export_info(run):
  version_dir = run.version_dir
  for path in ("saved_model.pb", "variables", warmup.WARMUP_FILE,
               exporter.INFO_FILE):
    assert os.path.exists(os.path.join(version_dir, path)), path
  requests_dir = os.path.join(version_dir, exporter.REQUESTS_DIR)
  assert sorted(os.listdir(requests_dir)) == sorted(
      f"{name}.json" for name in signatures.SIGNATURE_NAMES)
  # The staging directory was renamed into place, not left behind.
  assert os.listdir(os.path.dirname(version_dir)) == ["1"]
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


def parse_saved_model_cli_show(text):
  """{signature: {"inputs"|"outputs": {name: (dtype enum name, shape)}}}."""
  parsed = {}
  pattern = re.compile(r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+"
                       r"dtype: (\w+)\s+shape: (\([^)]*\)|unknown_rank)")
  for block in text.split("signature_def['")[1:]:
    name = block[:block.index("'")]
    entry = parsed.setdefault(name, {"inputs": {}, "outputs": {}})
    for kind, key, dtype, shape in pattern.findall(block):
      entry[kind][key] = (dtype, shape)
  return parsed


_DTYPE_ENUM_NAMES = {tf.uint8: "DT_UINT8", tf.float32: "DT_FLOAT",
                     tf.int32: "DT_INT32"}


def cli_entry(tensor_spec):
  shape = [str(-1 if d is None else d) for d in tensor_spec.shape]
  return _DTYPE_ENUM_NAMES[tensor_spec.dtype], "(" + ", ".join(shape) + ")"


def test_saved_model_cli_show_lists_documented_specs(run, commands):
  process = commands["show"].result()
  assert process.returncode == 0, process.stderr[-3000:]
  shown = parse_saved_model_cli_show(process.stdout)
  specs = signatures.signature_specs(run.config)
  for name in (*signatures.SIGNATURE_NAMES, "serving_default"):
    spec = specs[signatures.SERVING_DEFAULT if name == "serving_default"
                 else name]
    assert shown[name] == {
        "inputs": {k: cli_entry(s) for k, s in spec.inputs.items()},
        "outputs": {k: cli_entry(s) for k, s in spec.outputs.items()},
    }, name


def test_round_trip_exact_on_cifar(run, loaded):
  images = export_testlib.cifar_images("test", 64)
  if images is None:
    pytest.skip(f"CIFAR-10 subset not found at {export_testlib.CIFAR}.")
  encoded = call(loaded, "encode", images=images)
  assert encoded["z"].shape == (64, 8) and encoded["v"].shape == images.shape
  assert np.all(encoded["z_scale"] > 0)
  decoded = call(loaded, "decode", z=encoded["z"], v=encoded["v"])["images"]
  np.testing.assert_array_equal(decoded, images)
  # switch(x, x) is decode(z(x), v(x)) = x.
  np.testing.assert_array_equal(
      call(loaded, "switch", global_images=images[:8],
           local_images=images[:8])["images"], images[:8])


def test_sampling_and_representation_signatures(run, loaded):
  config, model, _ = checkpoints.restore_from_workdir(run.workdir)
  # sample_from_seed draws exactly what GLVAE.sample draws from that seed.
  seeded = call(loaded, "sample_from_seed", seed=np.array([3, 4], np.int32),
                num_samples=np.int32(5), temperature=np.float32(0.7))
  eager = model.sample(5, temperature=0.7, seed=[3, 4]).numpy()
  np.testing.assert_array_equal(seeded["images"], eager)
  # Noise-input sample: deterministic, and temperature scales v only.
  rng = np.random.default_rng(0)
  noise = dict(z_noise=rng.standard_normal((4, 8)).astype(np.float32),
               v_noise=rng.standard_normal((4, 32, 32, 3)).astype(np.float32))
  first = call(loaded, "sample", temperature=np.float32(0.8), **noise)
  again = call(loaded, "sample", temperature=np.float32(0.8), **noise)
  np.testing.assert_array_equal(first["images"], again["images"])
  z = model.prior.bijector.inverse(noise["z_noise"])
  np.testing.assert_array_equal(
      first["images"], call(loaded, "decode", z=z.numpy(),
                            v=0.8 * noise["v_noise"])["images"])
  # Interpolation corners are the two images and their switches.
  images = requests_lib.example_inputs(config, batch_size=2)["switch"]
  start, end = images["global_images"], images["local_images"]
  grid = call(loaded, "interpolate", images_start=start, images_end=end,
              z_fractions=np.array([0.0, 1.0], np.float32),
              v_fractions=np.array([0.0, 0.5, 1.0], np.float32))["images"]
  assert grid.shape == (2, 2, 3, 32, 32, 3) and grid.dtype == np.uint8
  np.testing.assert_array_equal(grid[:, 0, 0], start)
  np.testing.assert_array_equal(grid[:, 1, 2], end)
  np.testing.assert_array_equal(
      grid[:, 1, 0], call(loaded, "switch", global_images=end,
                          local_images=start)["images"])


def test_bad_inputs_name_the_expected_spec(loaded):
  z, v = np.zeros((1, 8), np.float32), np.zeros((1, 32, 32, 3), np.float32)
  small_v = np.zeros((1, 16, 16, 3), np.float32)
  # Tensors skip TF's binding check; the in-graph check names the spec.
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=re.escape("decode: input v must be float32 "
                                     "[N, 32, 32, 3]; got shape")):
    call(loaded, "decode", z=z, v=small_v)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=re.escape("encode: input images must be uint8 "
                                     "[N, 32, 32, 3]")):
    call(loaded, "encode", images=np.zeros((2, 32, 32), np.uint8))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="inputs z and v must have the same batch"):
    call(loaded, "decode", z=np.zeros((2, 8), np.float32), v=v)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="temperature must be > 0"):
    call(loaded, "sample", z_noise=z, v_noise=v, temperature=np.float32(0))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="num_samples must be >= 1"):
    call(loaded, "sample_from_seed", seed=np.array([0, 1], np.int32),
         num_samples=np.int32(0), temperature=np.float32(1))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="num_samples must be at most 1024 images"):
    call(loaded, "sample_from_seed", seed=np.array([0, 1], np.int32),
         num_samples=np.int32(5000), temperature=np.float32(1))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="decode: input v must be finite"):
    call(loaded, "decode", z=z, v=np.full_like(v, np.nan))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="encode: input images must not be empty"):
    call(loaded, "encode", images=np.zeros((0, 32, 32, 3), np.uint8))
  # NumPy inputs and the restored functions go through TF's own check,
  # whose message shows the expected TensorSpec.
  with pytest.raises(TypeError, match=re.escape(
      "TensorSpec(shape=(None, 32, 32, 3), dtype=tf.float32, name='v')")):
    loaded.signatures["decode"](z=z, v=small_v)
  with pytest.raises(TypeError, match=re.escape(
      "TensorSpec(shape=(None, 8), dtype=tf.float32, name='z')")):
    loaded.decode(tf.constant(z, tf.float64), tf.constant(v))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="expected to be a float tensor but is a double"):
    loaded.signatures["decode"](z=tf.constant(z, tf.float64),
                                v=tf.constant(v))


FRESH_PROCESS_SCRIPT = r"""
import glob, json, os, sys
# As if only TensorFlow were installed: these imports now fail (and TF's
# probe for Keras finds nothing). tfglv is installed editable here.
for name in ("tfglv", "keras", "tf_keras", "tensorflow_probability"):
  sys.modules[name] = None
import numpy as np
import tensorflow as tf

version_dir = sys.argv[1]
model = tf.saved_model.load(version_dir)
results = {}
for path in sorted(glob.glob(os.path.join(version_dir, "requests", "*.json"))):
  with open(path) as f:
    body = json.load(f)
  signature = model.signatures[body["signature_name"]]
  specs = signature.structured_input_signature[1]
  # As TF Serving's REST API does: JSON numbers become the spec's dtype.
  inputs = {k: tf.constant(np.asarray(v, specs[k].dtype.as_numpy_dtype))
            for k, v in body["inputs"].items()}
  outputs = signature(**inputs)
  results[body["signature_name"]] = {
      k: [v.dtype.name, v.shape.as_list()] for k, v in outputs.items()}
  if body["signature_name"] == "encode":
    encoded = outputs
    images = inputs["images"]
decoded = model.signatures["decode"](z=encoded["z"], v=encoded["v"])["images"]
results["round_trip_exact"] = bool(np.array_equal(decoded, images))
print(json.dumps(results))
"""


def test_fresh_process_runs_rest_bodies_with_tensorflow_only(run, commands):
  process = commands["fresh"].result()
  assert process.returncode == 0, process.stderr[-3000:]
  results = json.loads(process.stdout.strip().splitlines()[-1])
  assert results.pop("round_trip_exact") is True
  specs = signatures.signature_specs(run.config)
  assert set(results) == set(signatures.SIGNATURE_NAMES)
  assert results["decode"] == {"images": ["uint8", [1, 32, 32, 3]]}
  assert results["interpolate"] == {"images": ["uint8", [1, 3, 3, 32, 32, 3]]}
  assert results["sample_from_seed"] == {"images": ["uint8", [1, 32, 32, 3]]}
  assert sorted(results["encode"]) == sorted(specs["encode"].outputs)


def test_saved_model_cli_run_matches_python_loader(loaded, commands):
  process = commands["run"].result()
  assert process.returncode == 0, process.stderr[-3000:]
  expected = call(loaded, "encode", images=commands["images"])
  for key in ("z", "z_scale", "v"):
    np.testing.assert_allclose(np.load(commands["scratch"] / "out" /
                                       f"{key}.npy"),
                               expected[key], rtol=1e-5, atol=1e-5)


def test_warmup_records_parse_and_run(run, loaded):
  records = warmup.read_warmup_requests(run.version_dir)
  assert [r[1] for r in records] == list(signatures.SIGNATURE_NAMES)
  specs = signatures.signature_specs(run.config)
  for model_name, name, inputs in records:
    assert model_name == export_testlib.MODEL_NAME
    assert {k: v.dtype for k, v in inputs.items()} == {
        k: s.dtype.as_numpy_dtype for k, s in specs[name].inputs.items()}
    outputs = call(loaded, name, **inputs)
    assert set(outputs) == set(specs[name].outputs)


def test_grpc_requests_from_the_rest_bodies_run(run, loaded):
  specs = signatures.signature_specs(run.config)
  paths = sorted(glob.glob(os.path.join(run.version_dir, "requests", "*.json")))
  assert len(paths) == len(signatures.SIGNATURE_NAMES)
  for path in paths:
    with open(path) as f:
      body = json.load(f)
    request = grpc_client.predict_request(body, "tfglv", version=1)
    name = request.model_spec.signature_name
    assert request.model_spec.version.value == 1
    # TF Serving's gRPC path does not cast: dtypes must already match.
    assert {k: tf.dtypes.as_dtype(t.dtype) for k, t in request.inputs.items()
            } == {k: s.dtype for k, s in specs[name].inputs.items()}
    inputs = {k: tf.make_ndarray(t) for k, t in request.inputs.items()}
    from_json = requests_lib.inputs_from_rest_body(body, run.config)
    np.testing.assert_equal(inputs, from_json)
    assert set(call(loaded, name, **inputs)) == set(specs[name].outputs)


def test_grpc_client_dtypes_cover_every_signature_input(run):
  for spec in signatures.signature_specs(run.config).values():
    for key, tensor_spec in spec.inputs.items():
      assert grpc_client.INPUT_DTYPES[key] == tensor_spec.dtype, key


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


def test_versions_and_argument_checks(tmp_path):
  base = str(tmp_path)
  assert saved_model_lib.version_directory(base, "m") == os.path.join(
      base, "m", "1")
  for name in ("1", "7", "staging", ".staging-8-x"):
    os.makedirs(os.path.join(base, "m", name))
  assert saved_model_lib.version_directory(base, "m").endswith("m/8")
  with pytest.raises(ValueError, match="already exists.*omit it to use the "
                     "next one \\(8\\)"):
    saved_model_lib.version_directory(base, "m", 7)
  with pytest.raises(ValueError, match="positive integer"):
    saved_model_lib.version_directory(base, "m", 0)
  with pytest.raises(ValueError, match="plain directory name"):
    saved_model_lib.version_directory(base, "../m")
  with pytest.raises(ValueError, match="allowed: float32, float16, "
                     "dynamic_range"):
    exporter.export_from_workdir(base, base, tflite_variants=["int8"])


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
