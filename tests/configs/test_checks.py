"""Tests of tfglv.configs.checks: config value types and size bounds.

Two data-driven lists: values of the wrong type in a config.json (or a
--set), and sizes beyond their ceilings. Each case is one field and the one
line it must give.
"""

import copy
import json

import pytest

from tfglv import configs
from tfglv.configs import checks

TINY = configs.to_dict(configs.get("tiny"))


def tiny_dict(**changes):
  """The tiny config as a dict with dotted `changes` (`__` for dots)."""
  values = copy.deepcopy(TINY)
  for dotted, value in changes.items():
    parts = dotted.split("__")
    node = values
    for part in parts[:-1]:
      node = node[part]
    node[parts[-1]] = value
  return values


# (changes to the tiny config.json, expected message)
TYPE_CASES = [
    (dict(model__image_size="16"),
     "config field model.image_size must be an integer; got '16' (str)."),
    (dict(model__n_bits=[8]),
     "config field model.n_bits must be an integer; got [8] (list)."),
    (dict(model__decoder__hidden_channels=[8, "x", 16]),
     "config field model.decoder.hidden_channels must be a list of "
     "integers; got [8, 'x', 16]"),
    (dict(model__decoder__num_steps=[1, [1, "1"], 1]),
     "config field model.decoder.num_steps must be a list of integers or "
     "lists of integers; got [1, [1, '1'], 1]"),
    (dict(model__encoder__channels=8),
     "config field model.encoder.channels must be a list of integers; got 8"),
    (dict(train__batch_size=32.5),
     "config field train.batch_size must be an integer; got 32.5 (float)."),
    (dict(train__num_steps=True),
     "config field train.num_steps must be an integer; got True (bool)."),
    (dict(train__learning_rate="1e-3"),
     "config field train.learning_rate must be a number; got '1e-3' (str)."),
    (dict(train__learning_rate=None),
     "config field train.learning_rate must be a number; got None"),
    (dict(data__path=3), "config field data.path must be a string; got 3"),
    (dict(model__variant=["glow"]),
     "config field model.variant must be a string; got ['glow']"),
    (dict(train=5), "config section train must be an object of fields; got 5"),
    (dict(model__decoder="affine"),
     "config section model.decoder must be an object of fields"),
]


@pytest.mark.parametrize("changes,message", TYPE_CASES)
def test_a_value_of_the_wrong_type_names_field_type_and_value(changes,
                                                              message):
  with pytest.raises(ValueError) as error:
    configs.from_dict(tiny_dict(**changes))
  assert message in str(error.value)


def test_types_are_checked_after_overrides_and_in_validate():
  with pytest.raises(ValueError, match="model.decoder.hidden_channels must be "
                                       "a list of integers"):
    configs.override(configs.get("tiny"),
                     {"decoder.hidden_channels": '[8, "x", 16]'})
  with pytest.raises(ValueError, match="train.batch_size must be an integer"):
    configs.override(configs.get("tiny"), {"train.batch_size": 64.0})
  config = configs.get("tiny")
  config.model.image_size = "16"  # Set directly, past every loader.
  with pytest.raises(ValueError, match="model.image_size must be an integer"):
    configs.validate(config)
  with pytest.raises(ValueError, match="model.image_size must be an integer"):
    configs.model_from_dict(dict(TINY["model"], image_size="16"))


def test_ints_widen_to_floats_and_tuples_become_lists():
  config = configs.from_dict(tiny_dict(train__learning_rate=1,
                                       model__encoder__channels=(8, 8)))
  assert config.train.learning_rate == 1.0
  assert isinstance(config.train.learning_rate, float)
  assert config.model.encoder.channels == [8, 8]
  # A config that passed comes back equal through JSON.
  assert configs.from_json(configs.to_json(config)) == config


def test_a_config_json_of_the_wrong_type_is_refused_at_load(tmp_path):
  path = tmp_path / "config.json"
  path.write_text(json.dumps(tiny_dict(model__image_size="16")))
  with pytest.raises(ValueError, match="model.image_size must be an integer; "
                                       "got '16'"):
    configs.load(str(path))
  path.write_text("[1, 2]")
  with pytest.raises(ValueError, match="a config must be an object of fields"):
    configs.load(str(path))


# (overrides of the tiny config, expected message). tiny: 16x16x3 images.
BOUND_CASES = [
    ({"train.init_batch_size": "1000000000"},
     "train.init_batch_size 1000000000 is too large: the init batch of "
     "1000000000 images of 16x16x3 would hold 768,000,000,000 pixel values, "
     "more than the 1,073,741,824 allowed; use train.init_batch_size <= "
     "1398101."),
    ({"train.batch_size": "1000000", "train.num_posterior_samples": "4"},
     "train.batch_size 1000000 is too large: a training step of 1000000 "
     "images of 16x16x3, tiled 4 times (train.num_posterior_samples), would "
     "hold 3,072,000,000 pixel values, more than the 1,073,741,824 allowed; "
     "use train.batch_size <= 349525."),
    ({"data.synthetic_size": "10000000"},
     "data.synthetic_size 10000000 is too large: the synthetic set of "
     "10000000 images of 16x16x3 (held in memory) would hold 7,680,000,000 "
     "pixel values, more than the 2,147,483,648 allowed; use "
     "data.synthetic_size <= 2796202."),
    ({"data.synthetic_size": "0"}, "data.synthetic_size must be >= 1; got 0."),
    ({"data.synthetic_size": str(2 ** 25)},
     "data.synthetic_size must be at most 16777216; got 33554432."),
    ({"data.shuffle_buffer": "1000000000"},
     "data.shuffle_buffer must be at most 1048576; got 1000000000."),
    ({"latent_dim": "10000000"},
     "model.latent_dim must be at most 8192; got 10000000."),
    ({"image_size": "0"}, "model.image_size must be >= 1; got 0."),
    ({"image_size": "65536"}, "model.image_size must be at most 2048"),
    ({"channels": "100000"}, "model.channels must be at most 64; got 100000."),
    ({"decoder.hidden_channels": "[8, 1000000, 16]"},
     "model.decoder.hidden_channels entries must be at most 4096; got "
     "1000000."),
    ({"decoder.hidden_channels": "[8, 0, 16]"},
     "model.decoder.hidden_channels entries must be >= 1; got 0."),
    ({"encoder.channels": "[8, 100000]"},
     "model.encoder.channels entries must be at most 4096; got 100000."),
    ({"encoder.out_channels": "100000"},
     "model.encoder.out_channels must be at most 4096"),
    ({"prior.hidden_units": "100000000"},
     "model.prior.hidden_units must be at most 4096"),
    ({"prior.num_steps": "0"}, "model.prior.num_steps must be >= 1; got 0."),
    ({"prior.num_steps": "100000"},
     "model.prior.num_steps must be at most 256"),
    ({"decoder.num_steps": "[1, [1, -1], 1]"},
     "model.decoder.num_steps entries must be >= 0; got -1."),
    ({"decoder.num_steps": "[1, [1000, 1000], 1]"},
     "model.decoder.num_steps [1, [1000, 1000], 1] has 2002 Glow steps in "
     "all; at most 1024 are allowed."),
    ({"decoder.num_prior_blocks": "0"},
     "model.decoder.num_prior_blocks must be >= 1; got 0."),
    ({"decoder.num_prior_blocks": "1000000"},
     "model.decoder.num_prior_blocks must be at most 64"),
    ({"train.num_posterior_samples": "100000"},
     "train.num_posterior_samples must be at most 256; got 100000."),
    ({"train.eval_posterior_samples": "100000"},
     "train.eval_posterior_samples must be at most 256; got 100000."),
    ({"train.figure_scale": "1000"},
     "train.figure_scale 1000 would enlarge 16x16 images to 16000 px cells; "
     "at most 2048 px: use train.figure_scale <= 128"),
    ({"train.num_steps": str(10 ** 12)},
     "train.num_steps must be within +-2147483647; got 1000000000000."),
    ({"train.eval_batches": str(10 ** 30)},
     "train.eval_batches must be within +-2147483647"),
    ({"data.on_bad_image": "ignore"},
     "Unknown data.on_bad_image 'ignore'; allowed: error, skip."),
]


@pytest.mark.parametrize("overrides,message", BOUND_CASES)
def test_sizes_beyond_their_ceilings_are_refused(overrides, message):
  config = configs.override(configs.get("tiny"), overrides)
  with pytest.raises(ValueError) as error:
    configs.validate(config)
  assert message in str(error.value)


@pytest.mark.parametrize("name", configs.CONFIG_NAMES)
def test_every_named_config_is_within_the_bounds(name):
  configs.validate(configs.get(name))  # Raises if not.


def test_bounds_hold_at_the_edge():
  """The largest allowed value passes; one more does not."""
  largest = checks.MAX_BATCH_VALUES // (16 * 16 * 3)
  config = configs.get("tiny", train__init_batch_size=largest)
  assert config.train.init_batch_size == largest
  with pytest.raises(ValueError, match="init_batch_size"):
    configs.get("tiny", train__init_batch_size=largest + 1)
  configs.get("tiny", latent_dim=checks.MAX_LATENT_DIM)
  with pytest.raises(ValueError, match="latent_dim"):
    configs.get("tiny", latent_dim=checks.MAX_LATENT_DIM + 2)
  configs.get("tiny", train__seed=2 ** 40)  # The seed has no ceiling.


def test_a_tampered_config_json_is_refused_before_the_model_is_built(
    tmp_path):
  path = tmp_path / "config.json"
  path.write_text(json.dumps(tiny_dict(model__latent_dim=10 ** 7)))
  config = configs.load(str(path))  # Well-typed, so it loads ...
  with pytest.raises(ValueError, match="model.latent_dim must be at most"):
    configs.validate(config)  # ... and validating it refuses the size.
