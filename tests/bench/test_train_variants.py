"""bench.train_variants: a row is a variant with overrides of its own; the
rows' configs (no training here)."""

import re

import numpy as np
import pytest

import tfglv
from bench import train_variants


def test_a_row_is_a_variant_and_its_own_overrides():
  assert train_variants.parse_row("glow_original") == ("glow_original", {})
  assert train_variants.parse_row(
      "glvae:model.decoder.coupling=additive:train.batch_size=8") == (
          "glvae", {"model.decoder.coupling": "additive",
                    "train.batch_size": "8"})
  assert (train_variants.row_directory("glvae:model.decoder.alpha=0.5") ==
          "glvae_model.decoder.alpha=0.5")


@pytest.mark.parametrize("spec,message", [
    ("vae", "unknown variant 'vae'; a row is <variant>[:<field>=<value>]... "
     "with a variant of glvae, glow, glvae_prior_only, glow_original"),
    ("glvae:model.decoder.coupling", "expected <field>=<value> after each "
     "':'; got 'model.decoder.coupling'"),
])
def test_bad_rows_are_named(spec, message):
  with pytest.raises(ValueError,
                     match=re.escape(f"--models row {spec!r}: {message}")):
    train_variants.parse_row(spec)


def test_row_overrides_apply_after_the_common_ones():
  config = train_variants.bench_config(
      "glow:model.decoder.coupling=additive",
      sets=["model.decoder.coupling=affine", "train.batch_size=8"])
  assert config.model.variant == "glow"
  assert config.model.decoder.coupling == "additive"
  assert config.train.batch_size == 8
  with pytest.raises(ValueError, match="Unknown config field 'model.bogus'"):
    train_variants.bench_config("glvae:model.bogus=1")


def test_every_variant_builds_at_bench_scale_and_glow_original_is_glows():
  counts = {}
  for variant in tfglv.configs.MODEL_VARIANTS:
    model = tfglv.build_model(train_variants.bench_config(variant))
    counts[variant] = sum(int(np.prod(v.shape))
                          for v in model.trainable_variables)
  assert counts["glow"] == 309_412  # README's table
  glow = train_variants.bench_config("glow_original").model.glow_original
  assert (glow.num_levels, glow.num_steps, glow.hidden_channels) == (3, 5, 48)
  assert counts["glow_original"] == 341_352


def test_npz_sizes_set_glows_levels(tmp_path):
  path = str(tmp_path / "gray.npz")
  images = np.zeros((10, 28, 28, 1), np.uint8)
  np.savez(path, x_train=images, x_test=images)
  config = train_variants.bench_config("glow_original", npz=path)
  # 28 = 4 * 7: two halvings, as the refined flow's and the encoder's.
  assert config.model.glow_original.num_levels == 2
  assert config.model.image_size == 28 and config.model.channels == 1


def test_default_rows_are_every_variant_and_variational_dequantization():
  rows = train_variants.DEFAULT_ROWS
  assert rows[:len(tfglv.configs.MODEL_VARIANTS)] == list(
      tfglv.configs.MODEL_VARIANTS)
  variational = train_variants.bench_config(rows[-1])
  assert variational.model.variant == "glvae"
  assert variational.model.dequantization == "variational"
