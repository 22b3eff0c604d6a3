"""TF Lite files: builtin ops only, static shapes, parity with the SavedModel;
and the zero-width z of "glow" and "glow_original" through every path.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import export_testlib
import tfglv
from tfglv.data import synthetic
from tfglv.export_lib import exporter
from tfglv.export_lib import signatures
from tfglv.export_lib import tflite


def read_tflite(run, variant):
  path = os.path.join(run.version_dir, exporter.TFLITE_DIR,
                      tflite.file_name(export_testlib.MODEL_NAME, variant, 1))
  with open(path, "rb") as f:
    return f.read()


def test_files_have_builtin_ops_only_and_static_signatures(run):
  for variant in export_testlib.TFLITE_VARIANTS:
    model = read_tflite(run, variant)
    names = tflite.operator_names(model)
    assert "CONV_2D" in names and "DEPTH_TO_SPACE" in names
    assert not [n for n in names if n.startswith(("CUSTOM", "Flex"))], names
    assert "VAR_HANDLE" not in names and "READ_VARIABLE" not in names
    tflite.check_builtin_ops_only(model)
    runner = tflite.Runner(model)
    assert runner.signatures == {
        "decode": {"inputs": ["v", "z"], "outputs": ["images"]},
        "sample": {"inputs": ["temperature", "v_noise", "z_noise"],
                   "outputs": ["images"]}}
    details = runner.interpreter.get_signature_runner(
        "decode").get_input_details()
    assert details["z"]["shape"].tolist() == [1, 8]
    assert details["v"]["shape"].tolist() == [1, 32, 32, 3]


def test_op_check_rejects_select_tf_ops(tmp_path):
  # MatrixInverse has no builtin: it converts only with Select TF ops, and
  # the check must then refuse the file.
  @tf.function(input_signature=[tf.TensorSpec([3, 3], tf.float32)])
  def invert(matrix):
    return {"inverse": tf.linalg.inv(matrix)}

  path = str(tmp_path / "inverse")
  tf.saved_model.save(tf.Module(), path, signatures={
      "serving_default": invert.get_concrete_function()})
  converter = tf.lite.TFLiteConverter.from_saved_model(path)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                         tf.lite.OpsSet.SELECT_TF_OPS]
  model = converter.convert()
  assert "CUSTOM:FlexMatrixInverse" in tflite.operator_names(model)
  with pytest.raises(ValueError, match="non-builtin ops"):
    tflite.check_builtin_ops_only(model)
  builtins_only = tf.lite.TFLiteConverter.from_saved_model(path)
  builtins_only.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  with pytest.raises(Exception, match="MatrixInverse"):
    builtins_only.convert()


def test_parity_with_saved_model_on_real_images(run):
  loaded = export_testlib.loaded_saved_model()
  images = export_testlib.cifar_images("test", 16)
  if images is None:  # The parity check does not need real data.
    images = synthetic.generate(16, 32, 3, seed=5)["image"]

  def reference(signature, inputs):
    return exporter.run_signature(loaded, signature, inputs)["images"]

  encoded = exporter.run_signature(loaded, "encode", {"images": images})
  rng = np.random.default_rng(1)
  inputs = {
      "decode": {"z": encoded["z"], "v": encoded["v"]},
      "sample": {"z_noise": rng.standard_normal((16, 8)).astype(np.float32),
                 "v_noise": rng.standard_normal(
                     (16, 32, 32, 3)).astype(np.float32),
                 "temperature": np.float32(0.7)}}
  batched = {"decode": ("z", "v"), "sample": ("z_noise", "v_noise")}
  report = {}
  for variant in export_testlib.TFLITE_VARIANTS:
    runner = tflite.Runner(read_tflite(run, variant))
    report[variant] = {
        signature: tflite.pixel_errors(
            reference, runner, signature,
            tflite.batches(inputs[signature], 1, batched[signature]))
        for signature in tflite.SIGNATURES}
    if variant == "float32":
      decoded = np.concatenate(
          [runner("decode", **b)["images"]
           for b in tflite.batches(inputs["decode"], 1, ("z", "v"))])
      # On device, decode(encode(x)) is x to within one grey level.
      assert np.abs(decoded.astype(int) - images).max() <= 1
  print("TF Lite vs SavedModel pixel errors:", json.dumps(report, indent=1))
  for signature in tflite.SIGNATURES:
    assert report["float32"][signature]["max_pixel_error"] <= 1
    for variant in ("float16", "dynamic_range"):
      # Not a spec, a sanity bound: a broken conversion is off by ~100.
      assert report[variant][signature]["mean_pixel_error"] < 2.0
  with open(os.path.join(run.version_dir, exporter.INFO_FILE)) as f:
    recorded = json.load(f)["tflite"]
  assert recorded["batch_size"] == 1
  for variant in export_testlib.TFLITE_VARIANTS:
    entry = recorded["variants"][variant]
    assert entry["size_bytes"] == len(read_tflite(run, variant))
    assert entry["decode"]["max_pixel_error"] <= (
        1 if variant == "float32" else 255)


@pytest.mark.parametrize("variant", ["glow", "glow_original"])
def test_glow_has_zero_width_latents_everywhere(tmp_path, variant):
  config = tfglv.configs.get("tiny", model=variant)
  model = tfglv.build_model(config)
  images = synthetic.generate(4, 16, 3, seed=2)["image"]
  model.initialize(images)
  model.set_inference_cache(True)
  # Eager calls run the signatures' own code without the cost of tracing.
  functions = signatures.ServingFunctions(model)
  assert functions.specs["decode"].inputs["z"].shape.as_list() == [None, 0]
  encoded = functions.encode(tf.constant(images))
  assert encoded["z"].shape == (4, 0) and encoded["z_scale"].shape == (4, 0)
  np.testing.assert_array_equal(
      functions.decode(encoded["z"], encoded["v"])["images"], images)
  noise = np.random.default_rng(0).standard_normal((1, 16, 16, 3))
  sampled = functions.sample(tf.zeros((1, 0)), tf.constant(noise, tf.float32),
                             tf.constant(0.7))
  seeded = functions.sample_from_seed(tf.constant([1, 2]), tf.constant(2),
                                      tf.constant(0.7))
  np.testing.assert_array_equal(
      seeded["images"], model.sample(2, temperature=0.7, seed=[1, 2]))
  tflite.write_static_saved_model(model, str(tmp_path / "static"), 1)
  converted = tflite.convert(str(tmp_path / "static"), "float32")
  tflite.check_builtin_ops_only(converted)
  runner = tflite.Runner(converted)
  on_device = runner("sample", z_noise=np.zeros((1, 0), np.float32),
                     v_noise=noise.astype(np.float32),
                     temperature=np.float32(0.7))["images"]
  assert np.abs(on_device.astype(int) - sampled["images"].numpy()).max() <= 1
  decoded = runner("decode", z=np.zeros((1, 0), np.float32),
                   v=encoded["v"].numpy()[:1])["images"]
  assert np.abs(decoded.astype(int) - images[:1]).max() <= 1


def test_the_runner_checks_inputs_the_raw_interpreter_does_not(run):
  runner = tflite.Runner(read_tflite(run, "float32"))
  z = np.zeros((1, 8), np.float32)
  v = np.zeros((1, 32, 32, 3), np.float32)
  noise = dict(z_noise=z, v_noise=v)
  cases = [
      ("decode", dict(z=np.zeros((2, 8), np.float32), v=v),
       r"decode: input z must be float32 \[1, 8\] \(this file's batch is "
       r"fixed at export, --tflite_batch_size\); got float32 \[2, 8\]"),
      ("decode", dict(z=z, v=v.astype(np.float64)),
       r"input v must be float32 \[1, 32, 32, 3\] .* got float64"),
      ("decode", dict(z=z), r"decode takes inputs \['v', 'z'\]; got \['z'\]"),
      ("decode", dict(z=z + np.nan, v=v), r"input z must be finite"),
      ("decode", dict(z=z, v=v + 1e30),
       r"input v must lie within \+-10000; got a value of 1e\+30"),
      ("sample", dict(temperature=np.float32(1e6), **noise),
       r"temperature must lie in \(0, 10\]; got 1000000.0"),
      ("sample", dict(temperature=np.float32(0), **noise),
       r"temperature must lie in \(0, 10\]"),
      ("encode", dict(images=v), r"Unknown signature 'encode'; this model "
                                 r"has decode, sample"),
  ]
  for signature, inputs, message in cases:
    with pytest.raises(ValueError, match=message):
      runner(signature, **inputs)
  assert runner("decode", z=z, v=v)["images"].shape == (1, 32, 32, 3)
