"""Fault tests, in process: non-finite steps, bad checkpoints, determinism,
concurrent serving.

Kills of the real trainer process are in test_reliability_kill.py, malformed
inputs in test_reliability_inputs.py.
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
from tfglv import configs
from tfglv.data import synthetic
from tfglv.training import checkpoints
from tfglv.training import recovery
from tfglv.training import trainer as trainer_lib

# Settings that keep a trainer run to seconds after tracing (one device).
FAST = {"train.strategy": "one_device", "train.batch_size": "8",
        "train.init_batch_size": "16", "train.eval_batches": "1",
        "train.log_every": "1", "train.eval_posterior_samples": "1",
        "train.eval_every": "1000", "train.sample_every": "1000",
        "data.synthetic_size": "64", "data.shuffle_buffer": "16"}
POISON = 255  # An image made only of this value makes the loss NaN.


def tiny(**values):
  overrides = dict(FAST)
  overrides.update({k.replace("__", "."): str(v) for k, v in values.items()})
  return configs.override(configs.get("tiny"), overrides)


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
  config = tiny(data__dataset="npz", data__path=path,
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
  _, _, step = checkpoints.restore_from_workdir(workdir)
  reader = tf.train.load_checkpoint(checkpoints.latest_checkpoint(workdir))
  assert step == num_steps
  assert reader.get_tensor(
      "skipped_steps/.ATTRIBUTES/VARIABLE_VALUE") == len(bad_steps)


# ---------------------------------------------------------- bad checkpoints


def write_checkpoints(directory, steps=(2, 4, 6)):
  """CheckpointManager checkpoints of a small state, one per step."""
  state = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64),
                              weights=tf.Variable(tf.zeros([3000])))
  manager = tf.train.CheckpointManager(state, directory, max_to_keep=5)
  for step in steps:
    state.step.assign(step)
    state.weights.assign(tf.fill([3000], float(step)))
    manager.save(checkpoint_number=step)
  return {step: os.path.join(directory, f"ckpt-{step}") for step in steps}


def truncate(path):
  with open(path, "rb") as f:
    content = f.read()
  with open(path, "wb") as f:
    f.write(content[:len(content) // 2])


def flip_bytes(path):
  with open(path, "r+b") as f:
    f.seek(os.path.getsize(path) // 2)
    chunk = f.read(16)
    f.seek(os.path.getsize(path) // 2)
    f.write(bytes(b ^ 0xFF for b in chunk))


DAMAGE = {
    "truncated data": lambda prefix: truncate(
        prefix + ".data-00000-of-00001"),
    "flipped bytes in data": lambda prefix: flip_bytes(
        prefix + ".data-00000-of-00001"),
    "truncated index": lambda prefix: truncate(prefix + ".index"),
    "empty data": lambda prefix: open(
        prefix + ".data-00000-of-00001", "wb").close(),
    "missing data": lambda prefix: os.remove(
        prefix + ".data-00000-of-00001"),
}


def corrupt_listing(directory):
  corrupt = os.path.join(directory, recovery.CORRUPT_DIR)
  return sorted(os.listdir(corrupt)) if os.path.isdir(corrupt) else []


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_latest_checkpoint_is_kept_and_skipped(tmp_path, damage,
                                                       caplog):
  directory = str(tmp_path / "run" / "checkpoints")
  prefixes = write_checkpoints(directory)
  DAMAGE[damage](prefixes[6])
  kept = {name: open(os.path.join(directory, name), "rb").read()
          for name in os.listdir(directory) if name.startswith("ckpt-6.")}
  with caplog.at_level(logging.WARNING):
    good = recovery.recover(directory)
  assert good == prefixes[4]
  assert tf.train.latest_checkpoint(directory) == prefixes[4]
  assert tf.train.get_checkpoint_state(
      directory).all_model_checkpoint_paths[:] == [prefixes[2], prefixes[4]]
  # Kept byte for byte, out of the way of the run's next save of step 6.
  assert corrupt_listing(directory) == sorted(kept)
  for name, content in kept.items():
    with open(os.path.join(directory, recovery.CORRUPT_DIR, name), "rb") as f:
      assert f.read() == content
  assert not glob.glob(prefixes[6] + ".*")
  message = " ".join(r.getMessage() for r in caplog.records)
  assert "ckpt-6 is unreadable" in message and "Falling back to" in message
  assert os.path.join(directory, recovery.CORRUPT_DIR) in message
  # Nothing left to do the second time.
  assert recovery.recover(directory) == prefixes[4]


def test_two_damaged_checkpoints_fall_back_twice(tmp_path):
  directory = str(tmp_path / "run" / "checkpoints")
  prefixes = write_checkpoints(directory)
  DAMAGE["truncated data"](prefixes[6])
  DAMAGE["flipped bytes in data"](prefixes[4])
  assert recovery.recover(directory) == prefixes[2]
  assert len(corrupt_listing(directory)) == 4
  # The same step damaged again later keeps both copies.
  write_checkpoints(directory, steps=(4,))
  DAMAGE["truncated index"](prefixes[4])
  assert recovery.recover(directory) == prefixes[2]
  assert "ckpt-4.index.1" in corrupt_listing(directory)


def test_no_readable_checkpoint_is_an_error_and_moves_nothing(tmp_path):
  directory = str(tmp_path / "run" / "checkpoints")
  prefixes = write_checkpoints(directory, steps=(2, 4))
  for prefix in prefixes.values():
    DAMAGE["truncated data"](prefix)
  before = sorted(os.listdir(directory))
  with pytest.raises(ValueError, match=r"No checkpoint in .* can be read: "
                     r"ckpt-4: IndexError.*ckpt-2: IndexError.*Nothing was "
                     r"moved or deleted"):
    recovery.recover(directory)
  assert sorted(os.listdir(directory)) == before


def test_leftovers_of_an_interrupted_save_are_ignored_then_overwritten(
    tmp_path):
  """What a kill inside CheckpointManager.save can leave behind.

  Killed while writing shards (a `_temp` directory), while merging (a
  partial index), or between TF's two state writes around its retention
  sweep (the state still names a deleted checkpoint): the state file names
  only complete checkpoints, so the resume needs no repair.
  """
  directory = str(tmp_path / "run" / "checkpoints")
  prefixes = write_checkpoints(directory)
  shards = os.path.join(directory, "ckpt-8_temp")
  os.makedirs(shards)
  with open(os.path.join(shards, "part-00000-of-00001.index"), "wb") as f:
    f.write(b"\0" * 10)
  with open(prefixes[4] + ".index", "rb") as f:
    index = f.read()
  with open(os.path.join(directory, "ckpt-8.index"), "wb") as f:
    f.write(index[:len(index) // 3])
  os.remove(prefixes[2] + ".index")  # Swept, still named by the state.
  state_before = open(os.path.join(directory, "checkpoint")).read()
  assert recovery.recover(directory) == prefixes[6]
  assert open(os.path.join(directory, "checkpoint")).read() == state_before
  assert corrupt_listing(directory) == []
  # The resumed run's save of step 8 replaces the partial files.
  write_checkpoints(directory, steps=(8,))
  assert recovery.unreadable_reason(os.path.join(directory, "ckpt-8")) is None
  assert tf.train.latest_checkpoint(directory).endswith("ckpt-8")


@pytest.mark.parametrize("state_text", ["", "garbage {{{"])
def test_unreadable_state_file_is_rebuilt_from_file_names(tmp_path,
                                                          state_text):
  directory = str(tmp_path / "run" / "checkpoints")
  prefixes = write_checkpoints(directory)
  DAMAGE["truncated data"](prefixes[6])
  with open(os.path.join(directory, "checkpoint"), "w") as f:
    f.write(state_text)
  # TF itself would restart such a run from scratch (or fail to start).
  assert recovery.recover(directory) == prefixes[4]
  assert tf.train.latest_checkpoint(directory) == prefixes[4]
  assert corrupt_listing(directory) == sorted(
      ["checkpoint", "ckpt-6.data-00000-of-00001", "ckpt-6.index"])


def test_trainer_resumes_from_the_last_good_checkpoint(tmp_path, caplog):
  """The trainer's restore, after recovery, and eval/export's clear error."""
  workdir = str(tmp_path / "run")
  config = tiny(train__keep_checkpoints=5)
  trainer = trainer_lib.Trainer(config, workdir)
  configs.save(config, checkpoints.config_path(workdir))
  trainer._initialize()  # pylint: disable=protected-access
  for step in (2, 4):
    trainer.step.assign(step)
    trainer.checkpoint_manager.save(checkpoint_number=step)
  bad = os.path.join(workdir, "checkpoints", "ckpt-4")
  DAMAGE["truncated data"](bad)
  # Evaluation and export name the problem (this used to be an IndexError).
  with pytest.raises(ValueError, match=r"ckpt-4 is unreadable \(corrupt, "
                     r"truncated or missing files\): IndexError"):
    checkpoints.restore_from_workdir(workdir)
  with caplog.at_level(logging.WARNING):
    resumed = trainer_lib.Trainer(config, workdir)
  assert resumed.restore() == 2
  assert int(resumed.skipped_steps.numpy()) == 0
  assert resumed.model.is_initialized  # From the checkpoint, not re-run.
  assert "ckpt-4 is unreadable" in caplog.text
  assert corrupt_listing(os.path.join(workdir, "checkpoints")) == [
      "ckpt-4.data-00000-of-00001", "ckpt-4.index"]
  # Evaluation now finds the good one.
  assert checkpoints.restore_from_workdir(workdir)[2] == 2


# -------------------------------------------------------------- determinism


def test_same_seed_and_config_give_the_same_first_ten_losses(tmp_path):
  config = tiny(train__num_steps=10, train__checkpoint_every=10, train__seed=3)
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
  size = config.image_size
  images = synthetic.generate(6, size, 3, seed=4)["image"]
  rng = np.random.default_rng(5)
  d_z = config.latent_dim
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
