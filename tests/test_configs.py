"""Named configs: validation, overrides, JSON round trip."""

import dataclasses
import json
import os

import pytest

import tfglv
from tfglv import configs


@pytest.mark.parametrize("name", configs.CONFIG_NAMES)
@pytest.mark.parametrize("model", configs.MODEL_VARIANTS)
def test_named_configs_round_trip(name, model):
  config = configs.get(name, variant=model)
  assert configs.from_json(configs.to_json(config)) == config
  assert config.model.variant == model and config.name == name


def test_save_and_load(tmp_path):
  config = configs.get("tiny", model="glow", train__batch_size=7)
  configs.save(config, str(tmp_path / "config.json"))
  assert configs.load(str(tmp_path / "config.json")) == config
  assert config.train.batch_size == 7


def test_paper_hyper_parameters():
  cifar = configs.get("cifar10")
  assert cifar.model.decoder.num_steps == [2, [6, 6], [6, 6], 4]
  assert cifar.model.decoder.hidden_channels == [24, 512, 512, 512]
  assert (cifar.model.latent_dim, cifar.model.encoder.out_channels) == (64, 8)
  assert (cifar.train.batch_size, cifar.train.warmup_steps) == (512, 50)
  assert configs.get("imagenet64").model.latent_dim == 128
  assert configs.get("celebahq256").model.decoder.num_steps[-1] == 1


def test_overrides_parse_types():
  config = configs.override(configs.get("tiny"), {
      "train.learning_rate": "5e-4", "decoder.num_steps": "[1, [2], 1]",
      "decoder.compute_dtype": "bfloat16", "n_bits": "5"})
  assert config.train.learning_rate == 5e-4
  assert config.model.decoder.num_steps == [1, [2], 1]
  assert config.model.n_bits == 5
  assert config.model.decoder.compute_dtype == "bfloat16"


@pytest.mark.parametrize("call,message", [
    (lambda: configs.get("mnist"), "Unknown config name 'mnist'; allowed: tiny"),
    (lambda: configs.get("tiny", model="vae"),
     "Unknown model variant 'vae'; allowed: glvae, glow, glvae_prior_only, "
     "glow_original"),
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
  assert "train.batch_size" in names and "model.decoder.alpha" in names
  assert "model.variant" in names and "model.image_size" in names
  assert all(not dataclasses.is_dataclass(n) for n in names)


def test_model_subtree_is_all_the_model_reads():
  config = configs.get("tiny", variant="glow")
  assert isinstance(config.model, configs.ModelConfig)
  assert config.model.image_shape == (16, 16, 3)
  model = tfglv.build_model(config.model)
  assert model.config == config.model and model.variant == "glow"


@pytest.mark.parametrize("old,new", [
    ("model", "model.variant"), ("image_size", "model.image_size"),
    ("channels", "model.channels"), ("n_bits", "model.n_bits"),
    ("latent_dim", "model.latent_dim"),
    ("decoder.num_steps", "model.decoder.num_steps"),
    ("encoder.channels", "model.encoder.channels"),
    ("prior.hidden_units", "model.prior.hidden_units"),
    ("train.batch_size", "train.batch_size"), ("data.path", "data.path"),
    ("model.decoder.alpha", "model.decoder.alpha"), ("name", "name"),
])
def test_names_of_0_2_are_aliases(old, new):
  assert configs.canonical_key(old) == new


def test_aliases_and_canonical_names_give_the_same_config():
  old = configs.override(configs.get("tiny"), [
      ("model", "glow"), ("image_size", "32"),
      ("encoder.channels", "[8, 8, 8]"), ("decoder.alpha", "0.5")])
  new = configs.override(configs.get("tiny"), [
      ("model.variant", "glow"), ("model.image_size", "32"),
      ("model.encoder.channels", "[8, 8, 8]"),
      ("model.decoder.alpha", "0.5")])
  assert old == new and new.model.variant == "glow"
  # In order: the later pair wins.
  assert configs.override(new, [("model", "glvae"),
                                ("model.variant", "glow")]).model.variant == (
                                    "glow")


def test_reads_a_config_json_written_by_0_2(tmp_path):
  # tests/fixtures/config_0_2.json was written by tfglv 0.2 (flat model
  # fields, "model" naming the variant).
  fixture = os.path.join(os.path.dirname(__file__), "fixtures",
                         "config_0_2.json")
  config = configs.load(fixture)
  assert config.model.variant == "glvae_prior_only"
  assert (config.model.channels, config.model.decoder.alpha) == (1, 0.5)
  assert config.train.batch_size == 7 and config.data.path == "/data/x.npz"
  # Saved again, it is in today's layout and reads back equal.
  configs.save(config, str(tmp_path / "config.json"))
  with open(tmp_path / "config.json") as f:
    assert json.load(f)["model"]["variant"] == "glvae_prior_only"
  assert configs.load(str(tmp_path / "config.json")) == config


def test_model_config_alone_validates():
  with pytest.raises(ValueError, match="Unknown model variant 'vae'"):
    configs.validate_model(configs.ModelConfig(variant="vae"))
  with pytest.raises(ValueError, match="Unknown ModelConfig fields"):
    configs.model_from_dict({"variant": "glow", "batch_size": 3})
