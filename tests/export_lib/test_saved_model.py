"""The SavedModel as TF's tools and a TensorFlow-only process see it, and
the version directories it is written to.

All export tests share one export of a stand-in trained tiny run made
through the real command line (see export_testlib).
"""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf

import export_testlib
from tfglv.export_lib import exporter
from tfglv.export_lib import requests as requests_lib
from tfglv.export_lib import saved_model as saved_model_lib
from tfglv.export_lib import signatures


call = export_testlib.call  # a signature of a loaded SavedModel


@pytest.fixture(scope="module")
def commands(run, tmp_path_factory):
  """The command-line checks, started together (see Background)."""
  scratch = tmp_path_factory.mktemp("commands")
  images = requests_lib.example_inputs(
      run.config.model, batch_size=3)["encode"][
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
  specs = signatures.signature_specs(run.config.model)
  for name in (*signatures.SIGNATURE_NAMES, "serving_default"):
    spec = specs[signatures.SERVING_DEFAULT if name == "serving_default"
                 else name]
    assert shown[name] == {
        "inputs": {k: cli_entry(s) for k, s in spec.inputs.items()},
        "outputs": {k: cli_entry(s) for k, s in spec.outputs.items()},
    }, name


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
  specs = signatures.signature_specs(run.config.model)
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
  with pytest.raises(ValueError, match=r"an integer in \[1, "):
    saved_model_lib.version_directory(base, "m", 0)
  with pytest.raises(ValueError, match="plain directory name"):
    saved_model_lib.version_directory(base, "../m")
  with pytest.raises(ValueError, match="allowed: float32, float16, "
                     "dynamic_range"):
    exporter.export_from_workdir(base, base, tflite_variants=["int8"])




def test_concurrent_exports_reserve_different_versions(tmp_path):
  base = str(tmp_path)
  os.makedirs(os.path.join(base, "m", "3"))
  with saved_model_lib.reserve_version(base, "m") as (first, staging_1):
    # A second export while the first is still writing takes the next one.
    with saved_model_lib.reserve_version(base, "m") as (second, staging_2):
      assert (first, second) == (os.path.join(base, "m", "4"),
                                 os.path.join(base, "m", "5"))
      with pytest.raises(ValueError, match=r"Version 4 of .* is being "
                                           rf"exported by process {os.getpid()}"):
        saved_model_lib.version_directory(base, "m", 4)
      for staging in (staging_1, staging_2):
        with open(os.path.join(staging, "saved_model.pb"), "w") as f:
          f.write("x")
  assert saved_model_lib.existing_versions(os.path.join(base, "m")) == [3, 4,
                                                                        5]
  assert sorted(os.listdir(os.path.join(base, "m"))) == [".tfglv.lock", "3",
                                                         "4", "5"]


def test_a_killed_exports_reservation_is_cleared(tmp_path):
  base = str(tmp_path)
  child = subprocess.Popen(["sleep", "0"])
  child.wait()  # A pid that no longer runs.
  stale = os.path.join(base, "m", f".staging-1-pid{child.pid}-abc")
  os.makedirs(stale)
  assert saved_model_lib.version_directory(base, "m").endswith("m/1")
  assert not os.path.exists(stale)


def test_versions_beyond_int64_are_refused(tmp_path):
  base = str(tmp_path)
  for version in (2 ** 63, -1, True):
    with pytest.raises(ValueError, match=r"integer in \[1, "
                                         r"9223372036854775807\] \(TF "
                                         r"Serving's versions are int64\)"):
      saved_model_lib.version_directory(base, "m", version)
  os.makedirs(os.path.join(base, "m", str(2 ** 63 - 1)))
  with pytest.raises(ValueError, match=r"the largest TF Serving accepts"):
    saved_model_lib.version_directory(base, "m")


def test_published_versions_have_the_umasks_permissions():
  # Not under pytest's tmp_path: its parents are private to this user.
  base = tempfile.mkdtemp(prefix="tfglv_umask_")
  try:
    os.chmod(base, 0o755)
    old = os.umask(0o022)
    try:
      with saved_model_lib.reserve_version(base, "m") as (final, staging):
        os.makedirs(os.path.join(staging, "variables"))
        with open(os.path.join(staging, "saved_model.pb"), "w") as f:
          f.write("x")
    finally:
      os.umask(old)
    assert stat.S_IMODE(os.stat(final).st_mode) == 0o755
    if os.geteuid() != 0:
      pytest.skip("reading as another user needs root to switch users")
    nobody = 65534
    reader = subprocess.run(
        ["sh", "-c", 'ls "$1" && cat "$1/saved_model.pb"', "sh", final],
        preexec_fn=lambda: (os.setgid(nobody), os.setuid(nobody)),
        capture_output=True, text=True, check=False)
    assert reader.returncode == 0, reader.stderr
    assert reader.stdout.split() == ["saved_model.pb", "variables", "x"]
  finally:
    shutil.rmtree(base)
