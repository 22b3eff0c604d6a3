"""Fixtures of the evaluation tests: one tiny trained run, restored."""

import pytest

import evaluation_testlib
from tfglv import training
from tfglv.evaluation import runs


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory):
  """A tiny run trained for 3 steps (see evaluation_testlib.tiny_config)."""
  workdir = str(tmp_path_factory.mktemp("evaluate") / "tiny_run")
  training.train_and_evaluate(evaluation_testlib.tiny_config(), workdir)
  return workdir


@pytest.fixture(scope="session")
def run(trained_workdir):
  """That run opened for evaluation (an EvaluationRun), its figures at one
  pixel per image pixel so that tests can find the cells."""
  run = runs.load_run(trained_workdir)
  run.figure_scale = 1
  return run
