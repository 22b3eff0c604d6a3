"""Keras fit/evaluate on the negative ELBO (tfglv.keras_fit)."""

import glob
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfglv
from data_testlib import CIFAR_SUBSET
from tfglv import update_step

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _images(n, seed=0, size=16):
  rng = np.random.RandomState(seed)
  return rng.randint(0, 256, (n, size, size, 3)).astype(np.uint8)


def _model(variant="glvae", **compile_kwargs):
  keras.utils.set_random_seed(0)
  model = tfglv.build_model(tfglv.configs.get("tiny", model=variant))
  compile_kwargs.setdefault("optimizer", keras.optimizers.Adam(1e-3))
  model.compile(**compile_kwargs)
  return model


def _weights(model):
  return [v.numpy().copy() for v in model.trainable_variables]


@pytest.mark.slow  # 30 s. Default: the trainer's real-CIFAR loss test.
@pytest.mark.skipif(not os.path.exists(CIFAR_SUBSET),
                    reason="real CIFAR subset (../shared/data) is absent")
def test_fit_lowers_test_bits_per_dim_on_real_cifar():
  data = np.load(CIFAR_SUBSET)
  config = tfglv.configs.override(tfglv.configs.get("tiny"), {
      "model.image_size": "32", "model.encoder.channels": "[8, 8, 8]"})
  keras.utils.set_random_seed(0)
  model = tfglv.build_model(config.model)
  model.compile(optimizer=keras.optimizers.Adam(2e-3), seed=0)
  train = tf.data.Dataset.from_tensor_slices(
      (data["x_train"][:160], data["y_train"][:160])).batch(16)
  test = tf.data.Dataset.from_tensor_slices(data["x_test"][:64]).batch(32)
  model.initialize(data["x_train"][:16])
  before = model.evaluate(test, verbose=0, return_dict=True)
  history = model.fit(train, epochs=1, verbose=0).history
  after = model.evaluate(test, verbose=0, return_dict=True)
  print(f"test bpd {before['bpd']:.3f} -> {after['bpd']:.3f} after 10 steps "
        f"(train bpd {history['bpd'][0]:.3f})")
  assert after["bpd"] < before["bpd"] - 0.2
  assert after["loss"] == after["bpd"]
  np.testing.assert_allclose(after["nll"] + after["kl"], after["bpd"],
                             rtol=1e-6)


def test_fit_initialises_on_the_first_batch_and_its_loss_is_compute_losses():
  # Learning rate 0: the step leaves the weights as fit's init set them.
  model = _model(optimizer=keras.optimizers.SGD(0.0), seed=7)
  images = _images(8, seed=4)
  assert not model.is_initialized
  # tfglv's pipelines yield dicts; the labels are ignored.
  logs = model.fit(tf.data.Dataset.from_tensors(
      {"image": images, "label": np.arange(8)}), verbose=0).history
  assert model.is_initialized and int(model.optimizer.iterations) == 1
  keras.utils.set_random_seed(0)  # The weights `_model` started from.
  reference = tfglv.build_model(model.config)
  reference.initialize(images, seed=7)
  for got, expected in zip(model.data_initialized_variables,
                           reference.data_initialized_variables):
    np.testing.assert_array_equal(got.numpy(), expected.numpy())
  # The step's loss: the batch's negative ELBO from the seed of step 0.
  expected = model.compute_losses(images, update_step.step_seed(7, 0, 0),
                                  training=True)
  for name, key in (("loss", "loss"), ("bpd", "loss"), ("nll", "nll"),
                    ("kl", "kl")):
    assert logs[name] == [float(tf.reduce_sum(expected[key]) / 8.0)], name
  assert logs["skipped_steps"] == [0.0]


@pytest.mark.parametrize("data,message", [
    (np.zeros((4, 16, 16, 3), np.float32), "take uint8 images.*float32"),
    (tf.data.Dataset.from_tensors((np.zeros((4, 16, 16, 3)), np.zeros(4))),
     "take uint8 images.*float64"),
    (tf.data.Dataset.from_tensors({"x": np.zeros((4, 16, 16, 3), np.uint8)}),
     r"\"image\" entry of dict batches; got keys \['x'\]"),
])
def test_bad_batches_get_a_clear_message(data, message):
  model = _model()
  with pytest.raises(ValueError, match=message):
    model.fit(data, verbose=0)
  with pytest.raises(ValueError, match=message):
    model.evaluate(data, verbose=0)


def test_compile_takes_no_loss():
  model = tfglv.build_model(tfglv.configs.get("tiny"))
  with pytest.raises(ValueError, match="takes no loss or metrics"):
    model.compile(optimizer="adam", loss="mse")
  with pytest.raises(ValueError, match="num_posterior_samples must be"):
    model.compile(optimizer="adam", num_posterior_samples=0)


def test_non_finite_steps_are_skipped_as_the_trainer_skips_them():
  model = _model(variant="glow")
  images = _images(8)
  model.initialize(images)
  dataset = tf.data.Dataset.from_tensors(images)
  length = next(v for v in model.trainable_variables
                if "conv_out" in v.path and "length" in v.path)
  good = length.numpy()
  length.assign(np.full(good.shape, np.nan, np.float32))
  before = _weights(model)
  logs = model.fit(dataset, verbose=0).history
  assert logs["skipped_steps"] == [1.0] and logs["loss"] == [0.0]
  assert int(model.optimizer.iterations) == 0
  for got, expected in zip(_weights(model), before):
    np.testing.assert_array_equal(got, expected)
  length.assign(good)
  logs = model.fit(dataset, verbose=0).history
  assert logs["skipped_steps"] == [0.0] and np.isfinite(logs["loss"][0])
  assert int(model.optimizer.iterations) == 1


def test_evaluate_is_the_mean_bound_over_images():
  model = _model(seed=5, eval_posterior_samples=2)
  images = _images(8, seed=2)
  model.initialize(images)
  dataset = tf.data.Dataset.from_tensor_slices(images).batch(5)
  totals = {"loss": 0.0, "nll": 0.0, "kl": 0.0}
  for index, batch in enumerate(dataset):
    losses = model.compute_losses(batch, update_step.step_seed(6, index, 0),
                                  num_samples=2)
    for key in totals:
      totals[key] += float(np.sum(losses[key].numpy().astype(np.float64)))
  for _ in range(2):  # Each evaluation starts from batch 0 again.
    result = model.evaluate(dataset, verbose=0, return_dict=True)
    for name, key in (("bpd", "loss"), ("loss", "loss"), ("nll", "nll"),
                      ("kl", "kl")):
      np.testing.assert_allclose(result[name], totals[key] / 8, rtol=1e-6)


def test_keras_callbacks(tmp_path):
  model = _model(variant="glow")
  # Arrays, as Keras users pass them; fit batches them.
  history = model.fit(_images(16), batch_size=8, epochs=5, verbose=0,
                      validation_data=(_images(8, seed=1),),
                      callbacks=[
                          keras.callbacks.TensorBoard(str(tmp_path / "tb")),
                          keras.callbacks.ModelCheckpoint(
                              str(tmp_path / "epoch{epoch}.keras")),
                          # Any epoch not 10 bits/dim better stops it.
                          keras.callbacks.EarlyStopping(
                              monitor="val_bpd", mode="min", min_delta=10.0,
                              patience=0),
                      ]).history
  assert len(history["val_bpd"]) == 2  # The second epoch did not improve.
  for split in ("train", "validation"):
    assert glob.glob(str(tmp_path / "tb" / split / "events.out.tfevents.*"))
  restored = keras.models.load_model(str(tmp_path / "epoch2.keras"))
  images = _images(4, seed=3)
  np.testing.assert_array_equal(restored.encode(images).v,
                                model.encode(images).v)
  assert int(restored.optimizer.iterations) == 4


def _run(code, *args, **kwargs):
  return subprocess.run(
      [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
      cwd=REPO, capture_output=True, text=True, timeout=600,
      env=dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.path.join(
          REPO, "tests")])), **kwargs)


def fit_with_backup(backup_dir, kill_after_epoch=0):
  """4 epochs of 2 steps with BackupAndRestore; exits the process (as a
  kill: no clean-up) after `kill_after_epoch` epochs, if > 0.

  Returns the epochs this call ran, the update count and every variable.
  """
  model = _model(variant="glow", seed=1)
  dataset = tf.data.Dataset.from_tensor_slices(_images(16)).batch(8)
  epochs = []

  class Kill(keras.callbacks.Callback):

    def on_epoch_begin(self, epoch, logs=None):
      epochs.append(epoch)

    def on_epoch_end(self, epoch, logs=None):
      if epoch + 1 == kill_after_epoch:
        os._exit(17)  # pylint: disable=protected-access

  model.fit(dataset, epochs=4, verbose=0, callbacks=[
      keras.callbacks.BackupAndRestore(str(backup_dir)), Kill()])
  return (epochs, int(model.optimizer.iterations),
          [v.numpy() for v in model.variables])


@pytest.mark.slow  # 48 s. Default: the trainer's kill-and-resume test.
def test_backup_and_restore_resumes_after_a_kill(tmp_path):
  backup = tmp_path / "backup"
  killed = _run("import sys; import test_keras_fit as t; "
                "t.fit_with_backup(sys.argv[1], 2)", backup)
  assert killed.returncode == 17, killed.stderr[-3000:]
  assert (backup / "training_metadata.json").exists()
  epochs, iterations, resumed = fit_with_backup(backup)
  assert epochs == [2, 3] and iterations == 8  # Epochs 0, 1 were restored.
  epochs, iterations, straight = fit_with_backup(tmp_path / "other")
  assert epochs == [0, 1, 2, 3] and iterations == 8
  assert len(resumed) == len(straight) > 100
  for got, expected in zip(resumed, straight):
    # The same batches and noise (seeded by the update count): the same.
    np.testing.assert_array_equal(got, expected)


_MIRRORED_RUN = """
import sys
import tensorflow as tf
from tfglv.training import distribute
distribute.configure_cpu_devices(2)
import keras, numpy as np
import tfglv
from tfglv import update_step
from tfglv.training import optimizer as optimizer_lib

strategy = distribute.create_strategy("mirrored")
assert strategy.num_replicas_in_sync == 2
config = tfglv.configs.override(tfglv.configs.get("tiny", model="glow"), {
    "train.epsilon": "1.0", "train.warmup_steps": "0",
    "train.weight_decay": "0.0", "train.learning_rate": "0.01"})
images = np.random.RandomState(0).randint(0, 256, (8, 16, 16, 3))
images = images.astype(np.uint8)
optimizers = {
    "sgd": lambda: keras.optimizers.SGD(0.05),  # sums over replicas
    "tfglv_adamw": lambda: optimizer_lib.build_optimizer(config.train),
}
for name, make_optimizer in optimizers.items():
  keras.utils.set_random_seed(0)
  with strategy.scope():
    model = tfglv.build_model(config.model)
    model.compile(optimizer=make_optimizer(), seed=2)
  start = {}

  class Snapshot(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
      start["weights"] = [v.numpy() for v in model.trainable_variables]

  try:  # A last batch of 1 image would leave a replica without any.
    model.fit(tf.data.Dataset.from_tensor_slices(images).batch(7), verbose=0)
    raise AssertionError("fit took batches that do not split evenly")
  except ValueError as error:
    assert "drop_remainder=True" in str(error), error
  logs = model.fit(tf.data.Dataset.from_tensors(images), verbose=0,
                   callbacks=[Snapshot()]).history
  assert model.is_initialized
  assert distribute.replica_max_abs_difference(strategy, model.variables) == 0

  # fit initialised on its first (global) batch, as one device does.
  keras.utils.set_random_seed(0)
  reference = tfglv.build_model(config.model)
  reference.initialize(images, seed=2)
  for variable, value in zip(reference.trainable_variables, start["weights"]):
    if any(variable is v for v in reference.data_initialized_variables):
      np.testing.assert_array_equal(value, variable.numpy())
    variable.assign(value)
  # The same update on one device: replica r took images[4r:4r + 4].
  with tf.GradientTape() as tape:
    loss = sum(tf.reduce_sum(reference.compute_losses(
        images[4 * r:4 * r + 4], update_step.step_seed(2, 0, r),
        training=True)["loss"]) for r in range(2)) / 8.0
  grads = tape.gradient(loss, reference.trainable_variables)
  optimizer = make_optimizer()
  optimizer.apply(grads, reference.trainable_variables)
  for got, expected in zip(model.trainable_variables,
                           reference.trainable_variables):
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4,
                               atol=1e-6, err_msg=name + " " + got.path)
  np.testing.assert_allclose(logs["loss"], [float(loss)], rtol=1e-6)
  assert logs["skipped_steps"] == [0.0]
  print(name, "ok")

# A non-finite step is skipped on both replicas, and counted once.
length = next(v for v in model.trainable_variables if "length" in v.path)
length.assign(np.full(length.shape, np.nan, np.float32))
logs = model.fit(tf.data.Dataset.from_tensors(images).repeat(2),
                 verbose=0).history
assert logs["skipped_steps"] == [2.0], logs
assert int(model.optimizer.iterations.numpy()) == 1
print("skip ok")
"""


@pytest.mark.slow  # 59 s. Default: the trainer's two-replica test (not fit's).
def test_fit_under_mirrored_strategy_with_two_cpu_replicas():
  run = _run(_MIRRORED_RUN)
  assert run.returncode == 0, run.stderr[-4000:]
  assert "sgd ok" in run.stdout and "tfglv_adamw ok" in run.stdout
  assert "skip ok" in run.stdout
