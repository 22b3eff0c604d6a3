"""The exported signatures: what each computes, and its in-graph input checks.

The SavedModel tests share one export of a stand-in trained tiny run made
through the real command line (see export_testlib); the adapter tests run
`ServingFunctions` eagerly on a small model.
"""

import re

import numpy as np
import pytest
import tensorflow as tf

import export_testlib
import flow_checks
import tfglv
from tfglv import rundir
from tfglv.data import synthetic
from tfglv.export_lib import requests as requests_lib
from tfglv.export_lib import signatures


call = export_testlib.call  # a signature of a loaded SavedModel


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
  config, model, _ = rundir.restore(run.workdir)
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
  z, v = model.latents_from_noise(noise["z_noise"], noise["v_noise"], 0.8)
  np.testing.assert_array_equal(v.numpy(), 0.8 * noise["v_noise"])
  np.testing.assert_array_equal(
      first["images"], call(loaded, "decode", z=z.numpy(),
                            v=v.numpy())["images"])
  # Interpolation corners are the two images and their switches.
  images = requests_lib.example_inputs(model.config, batch_size=2)["switch"]
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


@pytest.mark.parametrize("model_name", tfglv.configs.MODEL_VARIANTS)
def test_each_signature_is_the_model_method_of_its_name(model_name):
  # Eager calls run the signatures' own code without the cost of tracing.
  config = tfglv.configs.get("tiny", model=model_name)
  model = tfglv.build_model(config)
  images = synthetic.generate(4, 16, 3, seed=2)["image"]
  model.initialize(images)
  flow_checks.perturb(model.trainable_variables, stddev=0.03)
  model.set_inference_cache(True)
  functions = signatures.ServingFunctions(model)
  inputs = {name: {key: tf.constant(value) for key, value in values.items()}
            for name, values in requests_lib.example_inputs(
                config.model, batch_size=2, seed=3).items()}

  def outputs(name):
    return {key: value.numpy()
            for key, value in functions.function(name)(**inputs[name]).items()}

  z, z_log_variance, v = model.encode(inputs["encode"]["images"])
  np.testing.assert_array_equal(outputs("encode")["z_scale"],
                                tf.exp(0.5 * z_log_variance).numpy())
  np.testing.assert_array_equal(outputs("encode")["v"], v.numpy())
  np.testing.assert_array_equal(outputs("encode")["z"], z.numpy())
  sample = inputs["sample"]
  expected = {
      "decode": model.decode(**inputs["decode"]),
      "sample": model.decode(*model.latents_from_noise(
          sample["z_noise"], sample["v_noise"], sample["temperature"])),
      "sample_from_seed": model.sample(
          **{key: inputs["sample_from_seed"][key]
             for key in ("num_samples", "temperature", "seed")}),
      "switch": model.switch(**inputs["switch"]),
      "interpolate": model.interpolate(**inputs["interpolate"]),
  }
  for name, images in expected.items():
    np.testing.assert_array_equal(outputs(name)["images"], images.numpy(),
                                  err_msg=name)
  assert outputs("interpolate")["images"].shape == (2, 3, 3, 16, 16, 3)
