"""Multi-worker training: `python -m train.main --strategy=multi_worker`.

Two worker processes on 127.0.0.1, one CPU device each, train `tiny` with a
TF_CONFIG each; a single-process MirroredStrategy run (one replica, which
traces several times faster than two) with the same global batch (8) and
seed is the reference: two workers of 4 images with all-reduced gradients
must train like one process of 8 images. Every process is killed (SIGKILL: TF's
gRPC runtime ignores SIGTERM while it waits for peers) if the test's
deadline passes, and in any case before the test returns.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from run_testlib import checkpoint_steps
from run_testlib import summary_of
from train_testlib import REPO

# Tracing dominates; two workers and the reference share two cores (the
# main test took 84 s on a 2-core machine busy with other jobs).
RUN_DEADLINE_SECONDS = 180
NUM_STEPS = 3
RUN = ["--config=tiny", "--batch_size=8", "--checkpoint_every=2",
       "--eval_every=1000", f"--num_steps={NUM_STEPS}",
       "--set", "train.log_every=1", "--set", "train.sample_every=1000",
       "--set", "train.init_batch_size=16", "--set", "train.eval_batches=1",
       "--set", "train.eval_posterior_samples=1",
       "--config.data.synthetic_size=64"]
DIGEST = re.compile(r"State digest at step (\d+) \(.*\): ([0-9a-f]{64})")
# Both runs see the same images per step and the same initial weights; only
# which replica (hence which dequantisation and posterior noise) an image
# gets differs. That moves the mean loss by ~1e-3 bits/dim; consecutive
# batches differ by ~0.15.
LOSS_TOLERANCE_BITS_PER_DIM = 0.02


def free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  try:
    for s in sockets:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def tf_config(ports, index):
  return json.dumps({
      "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
      "task": {"type": "worker", "index": index}})


class Processes:
  """Started Python processes, each logging to its own file."""

  def __init__(self, directory):
    self.directory = directory
    self.started = []  # (name, Popen, log path)

  def start(self, name, args, tf_config_value=None, tmpdir=None,
            module_args=("-m", "train.main")):
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    if tf_config_value is not None:
      env["TF_CONFIG"] = tf_config_value
    if tmpdir is not None:
      os.makedirs(tmpdir, exist_ok=True)
      env["TMPDIR"] = tmpdir  # Where a non-chief's checkpoint copies go.
    log = os.path.join(self.directory, f"{name}.log")
    with open(log, "w") as f:
      process = subprocess.Popen(
          [sys.executable, *module_args, *args], cwd=REPO, env=env,
          stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    self.started.append((name, process, log))

  def wait(self, deadline_seconds):
    """{name: (return code, log text)}; fails the test at the deadline."""
    end = time.monotonic() + deadline_seconds
    while any(p.poll() is None for _, p, _ in self.started):
      if time.monotonic() > end:
        running = [n for n, p, _ in self.started if p.poll() is None]
        self.kill()
        pytest.fail(f"still running after {deadline_seconds} s: {running}\n"
                    + self.tails())
      time.sleep(0.5)
    return {name: (p.returncode, self.text(log))
            for name, p, log in self.started}

  @staticmethod
  def text(log):
    with open(log, errors="replace") as f:
      return f.read()

  def tails(self):
    return "\n".join(f"--- {name}:\n{self.text(log)[-3000:]}"
                     for name, _, log in self.started)

  def kill(self):
    for _, process, _ in self.started:
      if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
      process.wait()


@pytest.fixture
def processes(tmp_path):
  started = Processes(str(tmp_path))
  try:
    yield started
  finally:
    started.kill()


def worker_directories(tmpdir):
  # TMPDIR also receives AutoGraph's own (self-cleaning) files.
  return [name for name in os.listdir(tmpdir) if name.startswith("tfglv_")]


def digests(log_text):
  return [(int(step), digest) for step, digest in DIGEST.findall(log_text)]


def start_workers(processes, tmp_path, workdir, tag, extra=()):
  ports = free_ports(2)
  for index in range(2):
    processes.start(
        f"{tag}_worker{index}",
        [*RUN, "--strategy=multi_worker", f"--workdir={workdir}", *extra],
        tf_config(ports, index), tmpdir=str(tmp_path / f"tmp{index}"))


@pytest.mark.slow  # 60 s. Default: collectives between two workers; resume.
def test_two_workers_match_each_other_and_one_mirrored_process(
    tmp_path, processes):
  workdir = str(tmp_path / "multi_worker")
  reference = str(tmp_path / "mirrored")
  start_workers(processes, tmp_path, workdir, "run")
  processes.start("mirrored", [*RUN, "--strategy=mirrored",
                               f"--workdir={reference}"])
  results = processes.wait(RUN_DEADLINE_SECONDS)
  for name, (code, text) in results.items():
    assert code == 0, f"{name} failed:\n{text[-4000:]}"

  chief = summary_of(workdir)
  assert chief["num_workers"] == 2 and chief["num_replicas"] == 2
  assert chief["step"] == NUM_STEPS and chief["actnorm_initialized"]
  assert checkpoint_steps(workdir) == [2, NUM_STEPS]
  # Non-chief checkpoint copies went to its TMPDIR and were removed; it
  # wrote nothing into the shared workdir (no probe files left either).
  for index in range(2):
    assert worker_directories(tmp_path / f"tmp{index}") == [], index
  assert sorted(os.listdir(workdir)) == [
      ".tfglv.lock", "checkpoints", "config.json", "eval", "reconstructions.png",
      "samples_t0.7.png", "samples_t1.0.png", "train", "train_summary.json"]

  # Bit-identical parameters and optimizer state on both workers.
  worker_digests = [digests(results[f"run_worker{i}"][1]) for i in range(2)]
  assert worker_digests[0] == worker_digests[1] == [
      (NUM_STEPS, chief["state_digest"])], worker_digests

  mirrored = summary_of(reference)
  assert mirrored["num_workers"] == 1 and mirrored["num_replicas"] == 1
  assert mirrored["global_batch_size"] == chief["global_batch_size"] == 8
  worker_losses = [h["loss"] for h in chief["train_history"]]
  mirrored_losses = [h["loss"] for h in mirrored["train_history"]]
  assert len(worker_losses) == len(mirrored_losses) == NUM_STEPS
  differences = [abs(a - b) for a, b in zip(worker_losses, mirrored_losses)]
  assert max(differences) < LOSS_TOLERANCE_BITS_PER_DIM, (
      worker_losses, mirrored_losses)


@pytest.mark.slow
def test_resume_with_the_same_cluster(tmp_path, processes):
  workdir = str(tmp_path / "multi_worker")
  start_workers(processes, tmp_path, workdir, "first", ["--num_steps=2"])
  processes.wait(RUN_DEADLINE_SECONDS)
  # New ports, same cluster shape: the second pair resumes the first's run.
  start_workers(processes, tmp_path, workdir, "second", ["--num_steps=4"])
  results = processes.wait(RUN_DEADLINE_SECONDS)
  for name, (code, text) in results.items():
    assert code == 0, f"{name} failed:\n{text[-4000:]}"
  for index in range(2):
    text = results[f"second_worker{index}"][1]
    assert "ckpt-2 at step 2" in text, text[-3000:]  # "Restored ..."
    assert "ActNorm and the encoder head initialised" not in text
    assert worker_directories(tmp_path / f"tmp{index}") == [], index
  chief = summary_of(workdir)
  assert chief["start_step"] == 2 and chief["step"] == 4
  assert checkpoint_steps(workdir) == [2, 4]
  assert (digests(results["second_worker0"][1]) ==
          digests(results["second_worker1"][1]) ==
          [(4, chief["state_digest"])])


# Each worker holds [1, 2, 3] * (its index + 1), then takes the chief's.
COLLECTIVES_SCRIPT = """
import json, os
import tensorflow as tf
from tfglv.training import distribute
strategy = distribute.create_strategy("multi_worker", 120)
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
with strategy.scope():
  variable = tf.Variable([1.0, 2.0, 3.0])
variable.assign(variable * (index + 1))
result = {"change": distribute.broadcast_from_chief(strategy, [variable]),
          "value": variable.numpy().tolist(),
          "chief_value": distribute.chief_value(strategy, 10.0 + index),
          "num_workers": distribute.num_workers(strategy),
          "is_chief": distribute.is_chief(strategy)}
distribute.check_workers_agree(strategy, 5.0, "five")
try:
  distribute.check_workers_agree(strategy, float(index), "the index")
except ValueError as e:
  result["disagreement"] = str(e)
print("RESULT", json.dumps(result))
"""


def test_collectives_between_two_workers(tmp_path, processes):
  ports = free_ports(2)
  for index in range(2):
    processes.start(f"worker{index}", [], tf_config(ports, index),
                    module_args=("-c", COLLECTIVES_SCRIPT))
  results = []
  for name, (code, text) in processes.wait(RUN_DEADLINE_SECONDS).items():
    assert code == 0, f"{name} failed:\n{text[-4000:]}"
    results.append(json.loads(text.split("RESULT ")[-1].splitlines()[0]))
  for index, result in enumerate(results):
    assert result["value"] == [1.0, 2.0, 3.0]  # The chief's, exactly.
    assert result["change"] == [0.0, 3.0][index]
    assert result["chief_value"] == 10.0
    assert result["num_workers"] == 2
    assert result["is_chief"] == (index == 0)
    assert "The workers disagree on the index: [0.0, 1.0]" in result[
        "disagreement"]


def test_entry_point_reports_malformed_tf_config(tmp_path, processes):
  workdir = str(tmp_path / "run")
  processes.start("bad", [*RUN, "--strategy=multi_worker",
                          f"--workdir={workdir}"],
                  '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": '
                  '{"type": "worker", "index": 1}}')
  (code, text), = processes.wait(RUN_DEADLINE_SECONDS).values()
  assert code != 0
  assert "index 1 is out of range" in text, text[-3000:]
  assert not os.path.exists(os.path.join(workdir, "config.json"))


@pytest.mark.slow  # 23 s (waits for a timeout). Default: malformed TF_CONFIG.
def test_unreachable_peer_stops_with_an_error(tmp_path, processes):
  # A lone leader (worker 0) and a lone worker 1, each in its own cluster
  # whose other address nobody listens on: both fail at the timeout.
  for index in range(2):
    processes.start(f"alone{index}",
                    [*RUN, "--strategy=multi_worker",
                     f"--workdir={tmp_path / f'run{index}'}",
                     "--multi_worker_timeout_seconds=10"],
                    tf_config(free_ports(2), index))
  for name, (code, text) in processes.wait(RUN_DEADLINE_SECONDS).items():
    assert code != 0, name
    assert "could not connect to all the other workers" in text, text[-3000:]
    assert "within 10 s (multi_worker_timeout_seconds)" in text, name
