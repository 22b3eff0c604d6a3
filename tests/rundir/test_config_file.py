"""Tests of tfglv.rundir.config_file: config.json and the resume check."""

import os
import shutil

import pytest

from tfglv import rundir

from train_testlib import tiny


def test_save_and_load_round_trip(tmp_path):
  config = tiny(train__num_steps=7)
  rundir.save_config(str(tmp_path), config)
  assert rundir.load_config(rundir.config_path(str(tmp_path))) == config


def test_unreadable_config_names_the_file(tmp_path):
  path = tmp_path / "config.json"
  path.write_text("{not json")
  with pytest.raises(ValueError, match="config.json is not a readable tfglv "
                     "config"):
    rundir.load_config(str(path))


def test_differences_and_their_description():
  differences = rundir.config_differences(
      tiny(), tiny(latent_dim=16, train__num_steps=999))
  assert differences == {"model.latent_dim": (8, 16),
                         "train.num_steps": (300, 999)}
  assert rundir.describe_differences(differences) == (
      "model.latent_dim: 8 -> 16; train.num_steps: 300 -> 999")


def test_resume_allows_run_fields_and_refuses_model_fields(tmp_path):
  workdir = str(tmp_path)
  assert rundir.check_resume_config(workdir, tiny()) == {}  # A new run.
  rundir.save_config(workdir, tiny())
  assert rundir.check_resume_config(
      workdir, tiny(train__num_steps=999)) == {
          "train.num_steps": (300, 999)}
  with pytest.raises(ValueError, match=r"holds a run of a different model; "
                     r"its config.json differs in model.latent_dim: 8 -> 16"):
    rundir.check_resume_config(workdir, tiny(latent_dim=16))


def test_a_run_written_by_0_2_continues_without_differences(tmp_path):
  fixture = os.path.join(os.path.dirname(__file__), "..", "fixtures",
                         "config_0_2.json")
  shutil.copy(fixture, tmp_path / "config.json")
  saved = rundir.load_config(str(tmp_path / "config.json"))
  assert saved.model.variant == "glvae_prior_only"
  assert rundir.check_resume_config(str(tmp_path), saved) == {}
