"""Fault tests, in process: non-finite steps, determinism, concurrent serving.

Kills of the real trainer process are in test_reliability_kill.py, malformed
inputs in test_reliability_inputs.py, damaged checkpoints in
tests/rundir/test_recovery.py.
"""

import concurrent.futures
import glob
import logging
import os
import threading

import numpy as np
import pytest
import tensorflow as tf

import export_testlib
from tfglv import rundir
from tfglv.data import synthetic
from tfglv.training import trainer as trainer_lib

from train_testlib import FAST_QUIET
from train_testlib import tiny

POISON = 255  # An image made only of this value makes the loss NaN.


def scalar_events(directory):
  """{tag: {step: value}} from the TensorBoard event files in `directory`."""
  series = {}
  for path in sorted(glob.glob(os.path.join(directory, "events.out.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.HasField("tensor") and not value.tensor.string_val:
          series.setdefault(value.tag, {})[event.step] = float(
              tf.make_ndarray(value.tensor))
  return series


# --------------------------------------------------------- non-finite steps


def poison_losses(model):
  """Makes `model.compute_losses` NaN (loss and gradients) on POISON images.

  Stands in for a batch on which a real run diverges: multiplying by NaN
  makes both the loss and every gradient non-finite.
  """
  original = model.compute_losses

  def compute_losses(images, seed, training=False, num_samples=1):
    losses = dict(original(images, seed, training=training,
                           num_samples=num_samples))
    flat = tf.reshape(images, [tf.shape(images)[0], -1])
    poisoned = tf.reduce_all(tf.equal(flat, POISON), axis=1)
    losses["loss"] = losses["loss"] * tf.where(poisoned, np.nan, 1.0)
    return losses

  model.compute_losses = compute_losses


def test_non_finite_steps_are_skipped_counted_and_training_continues(
    tmp_path, caplog):
  rng = np.random.default_rng(0)
  train_images = rng.integers(0, 255, (64, 16, 16, 3), dtype=np.uint8)
  train_images[10] = POISON  # One poisoned image: one bad batch per epoch.
  path = str(tmp_path / "poisoned.npz")
  np.savez(path, x_train=train_images,
           x_test=rng.integers(0, 255, (8, 16, 16, 3), dtype=np.uint8))
  num_steps = 16  # Two epochs of 8 batches.
  config = tiny(FAST_QUIET, data__dataset="npz", data__path=path,
                train__num_steps=num_steps, train__checkpoint_every=8)
  workdir = str(tmp_path / "run")
  trainer = trainer_lib.Trainer(config, workdir)
  poison_losses(trainer.model)
  # absl's own logger: TF Lite's converter, run earlier in the same test
  # process, leaves it at WARNING, so the root logger's level is not enough.
  with caplog.at_level(logging.INFO, logger="absl"):
    summary = trainer.run()

  history = summary["train_history"]
  assert [h["step"] for h in history] == list(range(1, num_steps + 1))
  bad_steps = [h["step"] for h in history if not np.isfinite(h["loss"])]
  assert bad_steps, "the poisoned image never reached a batch"
  print("non-finite steps:", bad_steps)
  assert summary["skipped_steps"] == len(bad_steps)
  assert summary["step"] == num_steps
  # Updates applied = steps taken - steps skipped.
  assert int(trainer.optimizer.iterations.numpy()) == num_steps - len(
      bad_steps)
  # Training went on: finite losses after each bad step, finite weights
  # and optimizer state at the end.
  assert all(np.isfinite(h["loss"]) for h in history
             if h["step"] not in bad_steps)
  assert bad_steps[0] < num_steps
  for variable in trainer.model.variables + trainer.optimizer.variables:
    assert np.all(np.isfinite(np.asarray(variable.numpy()))), variable.path
  # The count in the log lines and in TensorBoard, step by step.
  expected = {h["step"]: float(sum(s <= h["step"] for s in bad_steps))
              for h in history}
  assert {h["step"]: h["skipped_steps"] for h in history} == expected
  events = scalar_events(os.path.join(workdir, "train"))
  assert events["skipped_steps"] == expected
  assert sorted(s for s, v in events["loss"].items()
                if not np.isfinite(v)) == bad_steps
  logged = [r.getMessage() for r in caplog.records]
  for step in bad_steps:
    assert any(f"step {step}/{num_steps} | loss nan" in m and
               f"skipped_steps {expected[step]:.0f}" in m for m in logged)
  # The count is saved: a restore sees it.
  _, _, step = rundir.restore(workdir)
  reader = tf.train.load_checkpoint(rundir.latest_checkpoint(workdir))
  assert step == num_steps
  assert reader.get_tensor(
      "skipped_steps/.ATTRIBUTES/VARIABLE_VALUE") == len(bad_steps)


# -------------------------------------------------------------- determinism


def test_same_seed_and_config_give_the_same_first_ten_losses(tmp_path):
  config = tiny(FAST_QUIET, train__num_steps=10, train__checkpoint_every=10,
                train__seed=3)
  histories = []
  for name in ("first", "second"):
    summary = trainer_lib.Trainer(config, str(tmp_path / name)).run()
    histories.append([h["loss"] for h in summary["train_history"]])
  assert len(histories[0]) == 10
  assert all(np.isfinite(histories[0]))
  assert len(set(histories[0])) > 1  # Real, changing losses.
  assert histories[0] == histories[1]


# -------------------------------------------------------- concurrent serving


def serving_requests(config):
  """Eight different requests over every signature, as (name, inputs)."""
  size = config.model.image_size
  images = synthetic.generate(6, size, 3, seed=4)["image"]
  rng = np.random.default_rng(5)
  d_z = config.model.latent_dim
  noise = lambda *shape: rng.standard_normal(shape).astype(np.float32)
  return [
      ("encode", {"images": images[:3]}),
      ("encode", {"images": images[3:]}),
      ("decode", {"z": noise(2, d_z), "v": noise(2, size, size, 3)}),
      ("sample", {"z_noise": noise(2, d_z), "v_noise": noise(2, size, size, 3),
                  "temperature": np.float32(0.8)}),
      ("sample_from_seed", {"seed": np.array([3, 4], np.int32),
                            "num_samples": np.int32(3),
                            "temperature": np.float32(0.7)}),
      ("switch", {"global_images": images[:2], "local_images": images[2:4]}),
      ("interpolate", {"images_start": images[:1], "images_end": images[1:2],
                       "z_fractions": np.array([0, 0.5, 1], np.float32),
                       "v_fractions": np.array([0, 1], np.float32)}),
      ("decode", {"z": noise(1, d_z), "v": noise(1, size, size, 3)}),
  ]


def test_eight_threads_serving_at_once_match_serial_results():
  run = export_testlib.exported_run()
  loaded = export_testlib.loaded_saved_model()
  requests = serving_requests(run.config)
  assert len(requests) == 8

  def call(request):
    name, inputs = request
    outputs = loaded.signatures[name](
        **{key: tf.constant(value) for key, value in inputs.items()})
    return {key: value.numpy() for key, value in outputs.items()}

  serial = [call(request) for request in requests]
  barrier = threading.Barrier(len(requests))

  def call_together(request):
    barrier.wait(timeout=120)
    return call(request)

  with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
    for _ in range(3):
      barrier.reset()
      futures = [pool.submit(call_together, r) for r in requests]
      concurrent_results = [f.result(timeout=600) for f in futures]
      for request, expected, got in zip(requests, serial, concurrent_results):
        assert sorted(got) == sorted(expected), request[0]
        for key in expected:
          np.testing.assert_array_equal(got[key], expected[key],
                                        err_msg=f"{request[0]}/{key}")
