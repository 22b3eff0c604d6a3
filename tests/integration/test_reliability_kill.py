"""`kill -9` of the real trainer process, then the same command again.

Each kill lands a seeded random delay after the run's first new checkpoint
appears (during training steps, checkpoint saves or their clean-up). The
next run of the same command must restore the last committed checkpoint
(the one the `checkpoint` state file names) with the same step counter,
find every kept checkpoint complete, and lose at most one checkpoint
interval of logged steps. The default suite kills once; `-m slow` kills five
times in a row with 2 CPU replicas, then checks that the run ends exactly
where an uninterrupted one does, and that a damaged checkpoint is skipped
through the command line too.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from train_testlib import REPO

CHECKPOINT_EVERY = 2
KEEP_CHECKPOINTS = 3
COMMAND = ["--config=tiny", "--batch_size=8",
           f"--checkpoint_every={CHECKPOINT_EVERY}", "--eval_every=1000",
           "--set", "train.log_every=1", "--set", "train.sample_every=1000",
           "--set", "train.init_batch_size=16",
           "--set", "train.eval_batches=1",
           "--set", "train.eval_posterior_samples=1",
           "--set", f"train.keep_checkpoints={KEEP_CHECKPOINTS}",
           "--config.data.synthetic_size=64"]
TIMEOUT = 900  # Seconds; the machine may be shared and loaded.
STEP_LINE = re.compile(r"\] step (\d+)/(\d+) \|")
RESTORED_LINE = re.compile(r"Restored (\S+) at step (\d+) ")


class TrainerProcess:
  """`python -m train.main ...` with its log in a file (no pipe to fill)."""

  def __init__(self, args, log_path):
    self.log_path = log_path
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)
    with open(log_path, "w") as log:
      self.process = subprocess.Popen(
          [sys.executable, "-m", "train.main", *args], cwd=REPO, env=env,
          stdout=log, stderr=subprocess.STDOUT)

  def log(self) -> str:
    with open(self.log_path) as f:
      return f.read()

  def logged_steps(self):
    return [int(m.group(1)) for m in STEP_LINE.finditer(self.log())]

  def kill(self):
    assert self.process.poll() is None, (
        f"the run ended before the kill:\n{self.log()[-3000:]}")
    os.kill(self.process.pid, signal.SIGKILL)
    self.process.wait(timeout=60)

  def finish(self):
    try:
      self.process.wait(timeout=TIMEOUT)
    finally:
      if self.process.poll() is None:
        self.process.kill()
    assert self.process.returncode == 0, self.log()[-5000:]


def committed_checkpoints(workdir):
  """The checkpoints the state file names, oldest first ([] if none)."""
  state = tf.train.get_checkpoint_state(os.path.join(workdir, "checkpoints"))
  if state is None:
    return []
  return list(state.all_model_checkpoint_paths)


def step_of(prefix) -> int:
  return int(prefix.rsplit("-", 1)[1])


def latest_step(workdir) -> int:
  paths = committed_checkpoints(workdir)
  return step_of(paths[-1]) if paths else 0


def read_fully(prefix):
  """Every tensor of a checkpoint (TF verifies each one's checksum)."""
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()}


def wait_for(condition, what, process=None, timeout=TIMEOUT):
  deadline = time.time() + timeout
  while not condition():
    if process is not None and process.process.poll() is not None:
      raise AssertionError(f"the run exited while waiting for {what}:\n"
                           f"{process.log()[-3000:]}")
    if time.time() > deadline:
      raise AssertionError(f"timed out waiting for {what}")
    time.sleep(0.05)


def kill_after_a_new_checkpoint(process, workdir, start_step, delay):
  """Waits for a checkpoint past `start_step`, sleeps `delay` s, kills."""
  wait_for(lambda: latest_step(workdir) > start_step,
           f"a checkpoint after step {start_step}", process)
  time.sleep(delay)
  process.kill()


def check_after_kill(process, workdir):
  """Checks the kept checkpoints; returns (last committed step, steps lost)."""
  paths = committed_checkpoints(workdir)
  assert paths, "no committed checkpoint after the kill"
  # The newest `keep` checkpoints are complete. (A kill inside TF's
  # retention sweep may leave one older, already deleted name listed.)
  for prefix in paths[-KEEP_CHECKPOINTS:]:
    read_fully(prefix)
  last = step_of(paths[-1])
  assert last % CHECKPOINT_EVERY == 0
  logged = process.logged_steps()
  assert logged and logged[-1] >= last, (logged[-5:], last)
  return last, logged[-1] - last


def check_resumed(process, last):
  """The run restored the checkpoint of step `last`, and nothing else."""
  wait_for(lambda: RESTORED_LINE.search(process.log()), "the restore line",
           process)
  match = RESTORED_LINE.search(process.log())
  assert step_of(match.group(1)) == last and int(match.group(2)) == last
  log = process.log()
  assert "ActNorm and the encoder head initialised" not in log  # Restored, never re-initialised.
  assert "unreadable" not in log and "Falling back" not in log


def kill_and_resume(tmp_path, args, num_kills, num_steps, seed,
                    max_delay=1.5):
  """Runs `args` with `num_kills` kills; returns the per-kill records."""
  workdir = str(tmp_path / "run")
  command = [*args, f"--workdir={workdir}", f"--num_steps={num_steps}"]
  rng = random.Random(seed)
  records = []
  start_step = 0
  for attempt in range(num_kills + 1):
    process = TrainerProcess(command, str(tmp_path / f"log{attempt}.txt"))
    if attempt:
      check_resumed(process, start_step)
    if attempt == num_kills:
      process.finish()
      break
    delay = rng.uniform(0.0, max_delay)
    kill_after_a_new_checkpoint(process, workdir, start_step, delay)
    last, lost = check_after_kill(process, workdir)
    assert 0 <= lost <= CHECKPOINT_EVERY, (last, lost)
    records.append({"delay": delay, "last_logged": last + lost,
                    "committed": last, "lost": lost})
    start_step = last
  with open(os.path.join(workdir, "train_summary.json")) as f:
    summary = json.load(f)
  assert summary["start_step"] == start_step
  assert summary["step"] == num_steps
  assert not os.path.exists(os.path.join(workdir, "checkpoints", "corrupt"))
  print("kills:", records)
  return workdir, records


def test_kill_once_and_resume(tmp_path):
  kill_and_resume(tmp_path, [*COMMAND, "--strategy=one_device"], num_kills=1,
                  num_steps=60, seed=7)


@pytest.mark.slow
def test_five_kills_with_two_replicas_end_where_one_run_does(tmp_path):
  args = [*COMMAND, "--num_cpu_devices=2"]
  num_steps = 200
  workdir, records = kill_and_resume(tmp_path, args, num_kills=5,
                                     num_steps=num_steps, seed=2024)
  assert len(records) == 5
  whole = str(tmp_path / "uninterrupted")
  TrainerProcess([*args, f"--workdir={whole}", f"--num_steps={num_steps}"],
                 str(tmp_path / "uninterrupted.txt")).finish()
  final = f"ckpt-{num_steps}"
  resumed = read_fully(os.path.join(workdir, "checkpoints", final))
  straight = read_fully(os.path.join(whole, "checkpoints", final))
  assert sorted(resumed) == sorted(straight)
  for name in straight:
    if name.startswith(("model/", "optimizer/", "step/", "skipped_steps/")):
      np.testing.assert_array_equal(resumed[name], straight[name],
                                    err_msg=name)


@pytest.mark.slow
def test_command_line_falls_back_from_a_truncated_checkpoint(tmp_path):
  workdir = str(tmp_path / "run")
  command = [*COMMAND, "--strategy=one_device", f"--workdir={workdir}"]
  TrainerProcess([*command, "--num_steps=6"],
                 str(tmp_path / "first.txt")).finish()
  data = os.path.join(workdir, "checkpoints", "ckpt-6.data-00000-of-00001")
  size = os.path.getsize(data)
  with open(data, "r+b") as f:
    f.truncate(size // 2)
  second = TrainerProcess([*command, "--num_steps=8"],
                          str(tmp_path / "second.txt"))
  second.finish()
  log = second.log()
  assert re.search(r"ckpt-6 is unreadable \(IndexError: Read less bytes",
                   log), log[-3000:]
  assert RESTORED_LINE.search(log).group(2) == "4"
  corrupt = os.path.join(workdir, "checkpoints", "corrupt")
  assert os.path.getsize(os.path.join(
      corrupt, "ckpt-6.data-00000-of-00001")) == size // 2
  # The run saved a new, complete step 6 and went on to 8.
  read_fully(os.path.join(workdir, "checkpoints", "ckpt-6"))
  assert latest_step(workdir) == 8


def _signal_after_a_step(process, workdir, signum, start_step=0):
  """Sends `signum` once the run logs a step past `start_step`."""
  wait_for(lambda: any(s > start_step for s in process.logged_steps()),
           f"a step after {start_step}", process)
  os.kill(process.process.pid, signum)
  process.process.wait(timeout=TIMEOUT)


@pytest.mark.slow  # 36 s. Default: kill once and resume (SIGKILL).
def test_sigterm_and_sigint_stop_with_a_checkpoint(tmp_path):
  """Preemption (SIGTERM) and Ctrl-C (SIGINT) save the step they stop at:
  nothing is lost, and the same command continues from there."""
  workdir = str(tmp_path / "run")
  # No periodic checkpoint after the first: only the stop can save.
  command = COMMAND + [f"--workdir={workdir}", "--num_steps=100000",
                       "--checkpoint_every=100000"]
  first = TrainerProcess(command, str(tmp_path / "first.log"))
  _signal_after_a_step(first, workdir, signal.SIGTERM)
  log = first.log()
  assert first.process.returncode == 0, log[-3000:]
  stopped = re.search(r"Stopped by SIGTERM at step (\d+) with a checkpoint; "
                      r"run the same command to continue\.", log)
  assert stopped, log[-3000:]
  step = int(stopped.group(1))
  assert step >= 1 and latest_step(workdir) == step
  assert "Traceback" not in log

  second = TrainerProcess(command, str(tmp_path / "second.log"))
  _signal_after_a_step(second, workdir, signal.SIGINT, start_step=step)
  log = second.log()
  assert second.process.returncode == 130, log[-3000:]
  assert f"Restored {workdir}/checkpoints/ckpt-{step} at step {step} " in log
  stopped = re.search(r"Stopped by SIGINT at step (\d+)", log)
  assert stopped and int(stopped.group(1)) > step, log[-3000:]
  assert latest_step(workdir) == int(stopped.group(1))
  assert "Traceback" not in log and "KeyboardInterrupt" not in log


@pytest.mark.slow  # 36 s. Default: tests/rundir/test_lock.py.
def test_a_second_trainer_on_the_same_workdir_stops_at_once(tmp_path):
  workdir = str(tmp_path / "run")
  command = COMMAND + [f"--workdir={workdir}", "--num_steps=100000",
                       "--checkpoint_every=100000"]
  first = TrainerProcess(command, str(tmp_path / "first.log"))
  try:
    wait_for(lambda: first.logged_steps(), "a first step", first)
    config_before = open(os.path.join(workdir, "config.json")).read()
    second = TrainerProcess(command + ["--learning_rate=0.01"],
                            str(tmp_path / "second.log"))
    second.process.wait(timeout=TIMEOUT)
    log = second.log()
    assert second.process.returncode == 1, log[-3000:]
    assert (f"is in use by training (pid {first.process.pid} on host "
            f"{os.uname().nodename}, since ") in log, log[-3000:]
    assert "Traceback" not in log
    # The first run's files are untouched by the second.
    assert open(os.path.join(workdir, "config.json")).read() == config_before
    assert first.process.poll() is None
  finally:
    first.kill()
