"""Named configs: validation, overrides, JSON round trip."""

import dataclasses

import pytest

import tfglv
from tfglv import configs


@pytest.mark.parametrize("name", configs.CONFIG_NAMES)
@pytest.mark.parametrize("model", configs.MODEL_VARIANTS)
def test_named_configs_round_trip(name, model):
  config = configs.get(name, model=model)
  assert configs.from_json(configs.to_json(config)) == config
  assert config.model == model and config.name == name


def test_save_and_load(tmp_path):
  config = configs.get("tiny", model="glow", train__batch_size=7)
  configs.save(config, str(tmp_path / "config.json"))
  assert configs.load(str(tmp_path / "config.json")) == config
  assert config.train.batch_size == 7


def test_paper_hyper_parameters():
  cifar = configs.get("cifar10")
  assert cifar.decoder.num_steps == [2, [6, 6], [6, 6], 4]
  assert cifar.decoder.hidden_channels == [24, 512, 512, 512]
  assert (cifar.latent_dim, cifar.encoder.out_channels) == (64, 8)
  assert (cifar.train.batch_size, cifar.train.warmup_steps) == (512, 50)
  assert configs.get("imagenet64").latent_dim == 128
  assert configs.get("celebahq256").decoder.num_steps[-1] == 1


def test_overrides_parse_types():
  config = configs.override(configs.get("tiny"), {
      "train.learning_rate": "5e-4", "decoder.num_steps": "[1, [2], 1]",
      "decoder.compute_dtype": "bfloat16", "n_bits": "5"})
  assert config.train.learning_rate == 5e-4
  assert config.decoder.num_steps == [1, [2], 1]
  assert config.n_bits == 5 and config.decoder.compute_dtype == "bfloat16"


@pytest.mark.parametrize("call,message", [
    (lambda: configs.get("mnist"), "Unknown config name 'mnist'; allowed: tiny"),
    (lambda: configs.get("tiny", model="vae"),
     "Unknown model variant 'vae'; allowed: glvae, glow, glvae_prior_only"),
    (lambda: configs.override(configs.get("tiny"), {"train.bogus": "1"}),
     "Unknown config field 'train.bogus'; allowed: .*train.batch_size"),
    (lambda: configs.override(configs.get("tiny"), {"train.batch_size": "x"}),
     "Cannot parse 'x' for config field 'train.batch_size'"),
    (lambda: configs.get("tiny", decoder__alpha=1.5), r"alpha must be in \(0, 1\]"),
    (lambda: configs.get("tiny", decoder__alpha=0.0), r"alpha must be in \(0, 1\]"),
    (lambda: configs.get("tiny", n_bits=9), r"n_bits must be an integer in \[1, 8\]"),
    (lambda: configs.get("tiny", n_bits=0), r"n_bits must be an integer in \[1, 8\]"),
    (lambda: configs.get("tiny", image_size=18),
     "image_size 18 cannot be divided .* multiple of 4: 4, 8, 12, 16"),
    (lambda: configs.get("tiny", decoder__coupling="spline"),
     "allowed: affine, additive"),
    (lambda: configs.from_dict({"bogus": 1}), "Unknown Config fields"),
])
def test_bad_config_values(call, message):
  with pytest.raises(ValueError, match=message):
    call()


def test_field_names_cover_every_leaf():
  names = configs.field_names()
  assert "train.batch_size" in names and "decoder.alpha" in names
  assert all(not dataclasses.is_dataclass(n) for n in names)
