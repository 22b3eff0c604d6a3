"""Tests of tfglv.rundir.layout: paths and the write probe."""

import os

import pytest

from tfglv import rundir


def test_paths():
  assert rundir.config_path("/runs/a") == "/runs/a/config.json"
  assert rundir.checkpoint_directory("/runs/a") == "/runs/a/checkpoints"


def test_check_workdir_creates_it_and_leaves_no_probe(tmp_path):
  workdir = tmp_path / "new" / "run"
  rundir.check_workdir(str(workdir))
  assert os.listdir(workdir) == []
  assert rundir.latest_checkpoint(str(workdir)) is None


def test_check_workdir_names_the_problem(tmp_path):
  with pytest.raises(ValueError, match="A workdir is required"):
    rundir.check_workdir("")
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  with pytest.raises(ValueError, match="is not writable"):
    rundir.check_workdir(str(blocker / "run"))
