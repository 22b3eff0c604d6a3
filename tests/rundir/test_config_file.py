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


def test_resume_refuses_a_data_change_unless_allowed_and_records_it(
    tmp_path):
  workdir = str(tmp_path)
  rundir.save_config(workdir, tiny())
  # The length, learning rate and intervals may change without asking.
  assert set(rundir.check_resume_config(workdir, tiny(
      train__num_steps=999, train__learning_rate=5e-4,
      train__log_every=3))) == {"train.num_steps", "train.learning_rate",
                                "train.log_every"}
  switched = tiny(data__dataset="npz", data__path="/data/x.npz")
  with pytest.raises(ValueError, match=r"differs in data.dataset: "
                     r"'synthetic' -> 'npz'; data.path: '' -> '/data/x.npz'. "
                     r"Leave these settings out.*--allow_config_changes"):
    rundir.check_resume_config(workdir, switched)
  changes = rundir.check_resume_config(workdir, switched, allow_changes=True)
  assert changes == {"data.dataset": ("synthetic", "npz"),
                     "data.path": ("", "/data/x.npz")}
  rundir.save_config(workdir, switched, changes)
  rundir.save_config(workdir, switched)  # No change: no new entry.
  history = rundir.load_history(workdir)
  assert [entry["changes"] for entry in history] == [
      {"data.dataset": ["synthetic", "npz"], "data.path": ["", "/data/x.npz"]}]
  # The history is kept beside the config, not read as a field of it.
  assert rundir.load_config(rundir.config_path(workdir)) == switched
  assert rundir.saved_config(workdir) == switched
  assert rundir.saved_config(str(tmp_path / "new")) is None
