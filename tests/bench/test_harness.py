"""bench.harness: the images a benchmark times on, and how it times
(wall and CPU-seconds; never a speed itself)."""

import time

import numpy as np
import pytest
import tensorflow as tf

from bench import harness


def _npz(path, shape, count=5):
  images = np.random.RandomState(0).randint(0, 256, (count,) + shape,
                                            dtype=np.uint8)
  np.savez(path, images=images)
  return str(path), images


def test_npz_images_repeat_to_the_count(tmp_path):
  path, images = _npz(tmp_path / "small.npz", (32, 32, 3), count=10)
  loaded = harness.load_images(16, npz=path).numpy()
  train = images[:9]  # The file's last 10% is its test split.
  assert loaded.shape == (16, 32, 32, 3)
  np.testing.assert_array_equal(loaded[:9], train)
  np.testing.assert_array_equal(loaded[9:], train[:7])


def test_an_npz_of_another_shape_is_named(tmp_path):
  path, _ = _npz(tmp_path / "gray.npz", (28, 28, 1), count=10)
  with pytest.raises(ValueError, match=r"images are 28x28x1; this "
                                       r"benchmark's models take 32x32x3"):
    harness.load_images(16, npz=path)
  # A benchmark of grayscale models takes it.
  assert harness.load_images(3, 28, npz=path, channels=1).shape == (3, 28,
                                                                     28, 1)


def test_without_npz_any_shape_gets_pixels():
  images = harness.load_images(4, 16, channels=1)
  assert images.shape == (4, 16, 16, 1) and images.dtype == np.uint8
  assert "fresh clone" in harness.npz_help()


# --- timing: wall seconds and CPU-seconds -----------------------------------


def test_stopwatch_counts_cpu_seconds_of_work_not_of_waiting():
  with harness.Stopwatch() as waiting:
    time.sleep(0.3)
  assert waiting.timing.wall >= 0.3
  assert waiting.timing.cpu < 0.5 * waiting.timing.wall
  with harness.Stopwatch() as working:
    end = time.process_time() + 0.2
    while time.process_time() < end:
      pass
  assert working.timing.cpu >= 0.2


def test_speeds_are_per_second_and_per_cpu_second():
  timing = harness.Timing(wall=2.0, cpu=4.0)
  assert harness.speeds(16, timing) == (8.0, 4.0)
  assert harness.speed_cells(16, timing) == ("8.0", "4.0")
  assert harness.SPEED_COLUMNS == ("images/s", "images/CPU-s")
  assert harness.median_timing(
      [harness.Timing(1, 9), harness.Timing(3, 1), harness.Timing(2, 5)]) == (
          2, 5)
  with pytest.raises(ValueError, match="No timings"):
    harness.median_timing([])


def test_calls_take_turns_after_their_warm_up():
  log = []
  calls = {name: (lambda name=name: log.append(name)) for name in "ab"}
  times = harness.time_in_turns(calls, rounds=3, calls_per_round=2,
                                warmup=1, rounds_of={"b": 1})
  assert log == ["a", "b"] + ["a", "a", "b", "b"] + ["a", "a"] * 2
  assert [len(times[name]) for name in "ab"] == [3, 1]
  assert all(isinstance(t, harness.Timing) and t.wall >= 0 and t.cpu >= 0
             for t in times["a"] + times["b"])


def test_training_steps_get_their_seeds_per_round():
  seeds = []

  def step(images, seed):
    seeds.append(tuple(seed.numpy()))
    return images

  harness.time_interleaved({"step": step}, tf.zeros([2]), rounds=2,
                           steps_per_round=2, warmup=2)
  assert seeds == [(0, 0), (0, 0), (0, 0), (0, 1), (1, 0), (1, 1)]


def test_step_meter_times_every_call_but_the_first():
  calls = []
  meter = harness.StepMeter(lambda x: calls.append(x) or x * 2)
  assert [meter(i) for i in range(4)] == [0, 2, 4, 6]
  assert calls == [0, 1, 2, 3]
  assert meter.calls == 3
  assert meter.timing.wall > 0 and meter.timing.cpu >= 0
