"""Saving and loading the Keras way, and from a training run
(tfglv.keras_saving)."""

import json
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import flow_checks
import tfglv
from tfglv import _compat
from tfglv import keras_saving
from tfglv import rundir
from tfglv.training import optimizer as optimizer_lib


def _images(model, n=4, seed=0):
  rng = np.random.RandomState(seed)
  return rng.randint(0, 256, (n, *model.config.image_shape)).astype(np.uint8)


def _trained_like(variant="glvae"):
  """An initialised model off its init (every layer changes the outputs)."""
  model = tfglv.build_model(tfglv.configs.get("tiny", model=variant))
  model.initialize(_images(model, 16, seed=9))
  flow_checks.perturb(model.trainable_variables, stddev=0.03)
  return model


def _assert_same_model(loaded, model):
  assert type(loaded) is tfglv.GLVAE and loaded.config == model.config
  assert loaded.is_initialized
  assert len(loaded.variables) == len(model.variables)
  for got, expected in zip(loaded.variables, model.variables):
    assert got.path == expected.path
    np.testing.assert_array_equal(got.numpy(), expected.numpy())
  images = _images(model, 3, seed=1)
  for got, expected in zip(loaded.encode(tf.identity(images)),
                           model.encode(images)):
    np.testing.assert_array_equal(got, expected)
  z, _, v = model.encode(images)
  np.testing.assert_array_equal(loaded.decode(z, v), model.decode(z, v))
  np.testing.assert_array_equal(loaded.decode(z, v), images)


def test_every_layer_the_optimizer_and_the_schedule_are_registered():
  classes = {tfglv.GLVAE, optimizer_lib.WarmupExponentialDecay,
             optimizer_lib.ReducedGradientAdamW}
  for variant in tfglv.configs.MODEL_VARIANTS:
    model = tfglv.build_model(tfglv.configs.get("tiny", model=variant))
    classes.update(type(layer) for layer in _compat.sublayers(model)
                   if type(layer).__module__.startswith("tfglv."))
  assert len(classes) >= 16
  for cls in classes:
    name = keras.saving.get_registered_name(cls)
    assert name == f"tfglv>{cls.__name__}", cls
    assert keras.saving.get_registered_object(name) is cls


@pytest.mark.parametrize("variant", tfglv.configs.MODEL_VARIANTS)
def test_keras_file_round_trip_is_exact(tmp_path, variant):
  model = _trained_like(variant)
  for _ in range(2):  # Compiled functions are not saved.
    model.sample(2, seed=1)
  model.save(str(tmp_path / "model.keras"))
  _assert_same_model(keras.models.load_model(str(tmp_path / "model.keras")),
                     model)


def test_a_compiled_model_keeps_its_optimizer_and_fit_settings(tmp_path):
  model = _trained_like("glow")
  model.compile(optimizer=keras.optimizers.Adam(1e-3), seed=5,
                eval_posterior_samples=3)
  model.fit(_images(model, 8), batch_size=4, verbose=0)
  model.save(str(tmp_path / "model.keras"))
  loaded = keras.models.load_model(str(tmp_path / "model.keras"))
  _assert_same_model(loaded, model)
  assert loaded.get_compile_config() == model.get_compile_config()
  assert loaded.get_compile_config()["seed"] == 5
  assert int(loaded.optimizer.iterations) == 2
  for got, expected in zip(loaded.optimizer.variables,
                           model.optimizer.variables):
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_weights_file_round_trip_is_exact(tmp_path):
  model = _trained_like()
  model.save_weights(str(tmp_path / "model.weights.h5"))
  loaded = tfglv.build_model(model.config)
  assert not loaded.is_initialized
  loaded.load_weights(str(tmp_path / "model.weights.h5"))
  _assert_same_model(loaded, model)


def _training_run(workdir, model):
  """A run directory as train.main leaves it (rundir's checkpoint)."""
  optimizer = optimizer_lib.build_optimizer(tfglv.configs.get("tiny").train)
  optimizer.build(model.trainable_variables)
  state = rundir.make_checkpoint(model, optimizer,
                                 tf.Variable(30, dtype=tf.int64),
                                 tf.Variable(0, dtype=tf.int64))
  manager = tf.train.CheckpointManager(
      state, rundir.checkpoint_directory(str(workdir)), max_to_keep=3)
  return manager.save(checkpoint_number=30)


def test_a_training_checkpoint_loads_with_load_weights(tmp_path):
  model = _trained_like()
  prefix = _training_run(tmp_path, model)
  for path in (rundir.checkpoint_directory(str(tmp_path)), prefix):
    loaded = tfglv.build_model(model.config)
    loaded.load_weights(path)
    _assert_same_model(loaded, model)
  # Also into a compiled model (whose optimizer is not the run's).
  loaded = tfglv.build_model(model.config)
  loaded.compile(optimizer="adam")
  loaded.load_weights(prefix)
  _assert_same_model(loaded, model)
  # The run's inference caches are stale (training never refreshes them):
  # a model that reads its caches refreshes them after loading.
  loaded.set_inference_cache(True)
  loaded.load_weights(prefix)
  images = _images(model)
  z, _, v = loaded.encode(images)
  np.testing.assert_allclose(z, model.encode(images).z, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(loaded.decode(z, v), images)


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
  prefix = _training_run(tmp_path, _trained_like("glvae"))
  glow = tfglv.build_model(tfglv.configs.get("tiny", model="glow"))
  with pytest.raises(ValueError, match=r"does not fit this model \(glow, "
                     r".*holds \d+ objects this model has not, e\.g\. "
                     r"model/encoder"):
    glow.load_weights(prefix)
  with pytest.raises(ValueError, match="holds no checkpoint state file"):
    glow.load_weights(str(tmp_path))


def _rewrite_config(path, **changes):
  """The .keras file at `path` with top-level config fields changed."""
  with zipfile.ZipFile(path) as archive:
    files = {name: archive.read(name) for name in archive.namelist()}
  config = json.loads(files["config.json"])
  config["config"].update(changes)
  files["config.json"] = json.dumps(config).encode()
  changed = path.replace(".keras", "_changed.keras")
  with zipfile.ZipFile(changed, "w") as archive:
    for name, data in files.items():
      archive.writestr(name, data)
  return changed


def test_a_file_of_another_tfglv_version(tmp_path):
  model = _trained_like("glow")
  path = str(tmp_path / "model.keras")
  model.save(path)
  older = _rewrite_config(path, tfglv_version="0.2.9", keras_format=0)
  with pytest.raises(ValueError, match=(
      rf"saved by tfglv 0\.2\.9 \(weights format 0\); tfglv "
      rf"{tfglv.__version__} reads weights format "
      rf"{keras_saving.KERAS_FORMAT} only")):
    keras.models.load_model(older)
  # Another version writing the same format loads.
  same_format = _rewrite_config(path, tfglv_version="9.9.9")
  _assert_same_model(keras.models.load_model(same_format), model)
  # A config this version cannot read is named as such.
  config = dict(tfglv.configs.to_dict(model.config), future_field=1)
  unknown = _rewrite_config(path, tfglv_version="9.9.9", config=config)
  with pytest.raises(ValueError, match="saved by tfglv 9.9.9, whose model "
                     "config tfglv .* cannot read: .*future_field"):
    keras.models.load_model(unknown)
