"""End-to-end tests of `python -m train.main` in subprocesses.

The CPU is split into 2 logical devices, which must happen before
TensorFlow initialises its devices; hence a fresh process per run.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from run_testlib import checkpoint_steps
from run_testlib import summary_of
from train_testlib import REPO

# A 2-replica run of tiny small enough to finish quickly once traced.
SMALL_RUN = ["--config=tiny", "--num_cpu_devices=2", "--batch_size=8",
             "--checkpoint_every=2", "--eval_every=4",
             "--set", "train.log_every=2", "--set", "train.sample_every=4",
             "--set", "train.init_batch_size=16",
             # The whole test split: 10 images, so the last global batch
             # of 8 leaves replica 1 an empty batch.
             "--set", "train.eval_batches=0",
             "--set", "train.eval_posterior_samples=2",
             "--config.data.synthetic_size=80",
             # Fewer layers than tiny: tracing dominates such short runs.
             "--set", "decoder.num_steps=[1, [1], 1]",
             "--set", "encoder.channels=[4, 4]"]


def run_main(*args):
  result = subprocess.run([sys.executable, "-m", "train.main", *args],
                          cwd=REPO, capture_output=True, text=True,
                          timeout=900, check=False)
  return result


def test_two_replicas_train_checkpoint_and_resume(tmp_path):
  workdir = str(tmp_path / "run")
  first = run_main(*SMALL_RUN, f"--workdir={workdir}", "--num_steps=4")
  assert first.returncode == 0, first.stderr[-3000:]
  assert "ActNorm and the encoder head initialised on" in first.stderr
  summary = summary_of(workdir)
  assert summary["num_replicas"] == 2 and summary["step"] == 4
  assert summary["actnorm_initialized"]
  # One initialisation, in cross-replica context: identical copies, and
  # every update since kept them identical.
  assert summary["replica_max_abs_difference"]["actnorm"] == 0.0
  assert summary["replica_max_abs_difference"]["all_variables"] == 0.0
  assert checkpoint_steps(workdir) == [2, 4]
  for name in ("config.json", "samples_t0.7.png", "samples_t1.0.png",
               "reconstructions.png"):
    assert os.path.exists(os.path.join(workdir, name)), name
  for phase in ("train", "eval"):
    assert any(n.startswith("events.out.tfevents")
               for n in os.listdir(os.path.join(workdir, phase)))
  assert [h["step"] for h in summary["train_history"]] == [2, 4]
  assert summary["evaluations"][-1]["num_images"] == 10

  second = run_main(*SMALL_RUN, f"--workdir={workdir}", "--num_steps=6")
  assert second.returncode == 0, second.stderr[-3000:]
  assert "at step 4" in second.stderr  # "Restored ... at step 4"
  assert "ActNorm and the encoder head initialised" not in second.stderr
  resumed = summary_of(workdir)
  assert resumed["start_step"] == 4 and resumed["step"] == 6
  assert [h["step"] for h in resumed["train_history"]] == [6]
  assert resumed["replica_max_abs_difference"]["all_variables"] == 0.0
  assert checkpoint_steps(workdir) == [2, 4, 6]


@pytest.mark.parametrize("args, message", [
    (["--config=huge"], "value should be one of"),
    (["--set", "train.bogus=1"], "Unknown config field 'train.bogus'"),
    (["--num_cpu_devices=2", "--batch_size=7"], "not divisible by the 2"),
    (["--strategy=multi_worker", "--max_train_seconds=60"],
     "--max_train_seconds is not supported with --strategy=multi_worker"),
])
def test_bad_input_stops_before_a_run(tmp_path, args, message):
  workdir = str(tmp_path / "run")
  result = run_main(f"--workdir={workdir}", *args)
  assert result.returncode != 0
  assert message in result.stderr, result.stderr[-2000:]
  # One line and a pointer, not the module's docstring and every flag.
  assert "Kept short" not in result.stderr + result.stdout
  assert ("FATAL" in result.stderr and "--helpfull" in result.stderr)
  # No TensorFlow start-up banner, no CUDA line on a machine without GPUs.
  for noise in ("oneDNN custom operations", "cuInit",
                "cpu_feature_guard", "absl::InitializeLog"):
    assert noise not in result.stderr, noise
  assert not os.path.exists(os.path.join(workdir, "config.json"))


def test_helpfull_documents_the_overrides():
  result = run_main("--helpfull")  # absl exits 1 after printing help.
  for flag in ("--set", "model.encoder.channels", "tfglv/configs/schema.py",
               "--model", "--dataset", "--data_dir", "--strategy",
               "--num_cpu_devices", "--checkpoint_every"):
    assert flag in result.stdout, flag
  # One override path: no flag per config field any more.
  assert "--config.train.batch_size" not in result.stdout


def test_old_config_flags_become_set_in_order():
  from train import main  # pylint: disable=g-import-not-at-top
  assert main.rewrite_config_flags(
      ["prog", "--config.train.batch_size=8", "--config.decoder.alpha", "0.5",
       "--set", "model.n_bits=5", "--configfoo", "--config=tiny"]) == [
           "prog", "--set=train.batch_size=8", "--set=decoder.alpha=0.5",
           "--set", "model.n_bits=5", "--configfoo", "--config=tiny"]


@pytest.mark.slow
def test_resume_is_exact(tmp_path):
  """Two runs of 2 + 2 steps end exactly where one run of 4 steps does."""
  split, whole = str(tmp_path / "split"), str(tmp_path / "whole")
  for workdir, steps in ((split, 2), (split, 4), (whole, 4)):
    result = run_main(*SMALL_RUN, f"--workdir={workdir}",
                      f"--num_steps={steps}")
    assert result.returncode == 0, result.stderr[-3000:]
  check = subprocess.run(
      [sys.executable, "-c", (
          "import sys, numpy as np\n"
          "from tfglv import rundir\n"
          "_, a, _ = rundir.restore(sys.argv[1])\n"
          "_, b, _ = rundir.restore(sys.argv[2])\n"
          "worst = max(float(np.max(np.abs(x.numpy() - y.numpy()), "
          "initial=0)) for x, y in zip(a.variables, b.variables))\n"
          "print('max difference', worst)\n"
          "sys.exit(0 if worst == 0 else 1)\n"), split, whole],
      cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert check.returncode == 0, check.stdout + check.stderr[-2000:]
  assert summary_of(split)["train_history"][-1]["loss"] == summary_of(
      whole)["train_history"][-1]["loss"]


def test_workdir_alone_continues_the_saved_run_and_refuses_a_data_switch(
    tmp_path):
  """The run of an .npz resumes from --workdir alone, on the same data, for
  --max_train_seconds; a flag that switches its dataset is refused."""
  npz = str(tmp_path / "images.npz")
  rng = np.random.default_rng(0)
  np.savez(npz, x_train=rng.integers(0, 256, (64, 16, 16, 3), np.uint8),
           x_test=rng.integers(0, 256, (8, 16, 16, 3), np.uint8))
  workdir = str(tmp_path / "run")
  fast = ["--set", "train.init_batch_size=16", "--set", "train.log_every=1",
          "--set", "decoder.num_steps=[1, [1], 1]",
          "--set", "encoder.channels=[4, 4]", "--set", "train.eval_batches=1",
          "--strategy=one_device"]
  first = run_main("--config=tiny", f"--workdir={workdir}", "--dataset=npz",
                   f"--data_path={npz}", "--batch_size=8", "--num_steps=2",
                   *fast)
  assert first.returncode == 0, first.stderr[-3000:]
  with open(os.path.join(workdir, "config.json")) as f:
    saved = f.read()

  # Another dataset: refused, naming the field and the way to force it.
  switched = run_main(f"--workdir={workdir}", "--dataset=synthetic")
  assert switched.returncode != 0
  assert "data.dataset: 'npz' -> 'synthetic'" in switched.stderr
  assert "--allow_config_changes" in switched.stderr
  with open(os.path.join(workdir, "config.json")) as f:
    assert f.read() == saved

  # --workdir alone (and a longer run, allowed), stopped by the clock.
  second = run_main(f"--workdir={workdir}", "--num_steps=100000",
                    "--max_train_seconds=0.001")
  assert second.returncode == 0, second.stderr[-3000:]
  assert "at step 2" in second.stderr  # "Restored ... at step 2"
  summary = summary_of(workdir)
  assert 2 < summary["step"] < 100000 and summary["start_step"] == 2
  assert checkpoint_steps(workdir)[-1] == summary["step"]
  with open(os.path.join(workdir, "config.json")) as f:
    config = json.load(f)
  assert config["data"]["dataset"] == "npz" and config["data"]["path"] == npz
  assert config["history"][-1]["changes"] == {
      "train.num_steps": [2, 100000]}
