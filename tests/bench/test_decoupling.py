"""bench.decoupling: settings, configs and the table (not its numbers)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bench import decoupling

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_named_and_own_settings_parse():
  assert decoupling.parse_setting("plain") == ("plain", {})
  name, values = decoupling.parse_setting(
      "mine: train.batch_size=16 ; model.decoder.num_steps=[2, 2]")
  assert name == "mine"
  assert values == {"train.batch_size": "16",
                    "model.decoder.num_steps": "[2, 2]"}


@pytest.mark.parametrize("text, message", [
    ("nope", r"Unknown setting 'nope'; allowed: plain, free_bits"),
    ("x:train.batch_size", r"'train.batch_size' is not field=value"),
    (":train.batch_size=4", r"needs a name"),
    ("a/b:train.batch_size=4", r"needs a name without '/'"),
])
def test_bad_settings_are_named(text, message):
  with pytest.raises(ValueError, match=message):
    decoupling.parse_setting(text)


def test_every_named_setting_is_a_valid_config():
  for name, values in decoupling.SETTINGS.items():
    config = decoupling.setting_config(values, "", steps=10)
    assert config.model.variant == "glvae"
    assert config.train.num_steps == 10
    for field, value in values.items():
      section, key = field.split(".")
      got = getattr(getattr(config, section), key)
      assert got == type(got)(value), name


def test_an_npz_sets_the_image_shape(tmp_path):
  images = np.zeros((20, 12, 12, 1), np.uint8)
  path = str(tmp_path / "gray.npz")
  np.savez(path, x_train=images, x_test=images[:5],
           y_train=np.arange(20) % 2, y_test=np.arange(5) % 2)
  config = decoupling.setting_config({}, path, steps=5,
                                     extra=["model.decoder.num_steps=[1, 1]",
                                            "model.decoder.hidden_channels="
                                            "[8, 8]",
                                            "model.encoder.channels=[8]"])
  assert config.model.image_shape == (12, 12, 1)
  assert config.data.dataset == "npz"


def test_a_bad_field_is_refused():
  with pytest.raises(ValueError, match="train.free_bitz"):
    decoupling.setting_config({"train.free_bitz": "1"}, "", steps=5)


def _row(name, z_shape):
  return {"setting": name, "step": 7, "bpd": 5.25, "kl_bits_per_image": 3.5,
          "active_units": 2, "latent_dim": 16,
          "probe": {"label": {"z": z_shape, "v": 0.25, "raw pixels": 0.5},
                    "palette": {"z": 0.9, "v": 0.4, "raw pixels": 1.0}},
          "chance": {"label": 0.18, "palette": 0.16},
          "aliases": {"label": ["shape"], "palette": []},
          "switch": {"label": {"follows_z": 0.6, "follows_v": 0.3},
                     "palette": {"follows_z": None, "follows_v": None}}}


def test_table_has_one_line_per_setting_and_the_factors():
  table = decoupling.format_table([_row("plain", 0.2), _row("fb", 0.75)])
  lines = table.splitlines()
  assert "label=shape probe z/v/px %" in lines[0]
  assert "palette switch z/v %" in lines[0]
  assert lines[2].startswith("| plain | 7 | 5.250 | 3.5 | 2/16 | 20/25/50 "
                             "| 60/30 | 90/40/100 | -/- |")
  assert "| fb |" in lines[3] and "75/25/50" in lines[3]
  assert lines[4] == "chance (majority class) %: label=shape 18, palette 16"


@pytest.mark.slow
def test_runs_from_the_command_line(tmp_path):
  root = str(tmp_path / "runs")
  out = subprocess.run(
      [sys.executable, "-m", "bench.decoupling", "--settings=plain",
       "--steps=3", f"--workdir_root={root}", "--eval_images=40",
       "--probe_train_images=60", "--switch_pairs=10"],
      cwd=_REPO, capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "| plain | 3 |" in out.stdout
  with open(os.path.join(root, "decoupling.json")) as f:
    rows = json.load(f)
  assert rows[0]["step"] == 3 and set(rows[0]["probe"]) == {"label",
                                                            "palette"}
