"""Tests of tfglv.diagnostics against hand-computed cases."""

import math

import numpy as np
import pytest

from tfglv import configs
from tfglv import diagnostics


def test_kl_bits_per_image_of_a_known_gaussian():
  # KL(N(1, 1) || N(0, 1)) = mu^2 / 2 = 0.5 nats = 0.5 / ln 2 bits, spread
  # over the 16 x 16 x 3 values of an image as bits/dim.
  dims = 16 * 16 * 3
  per_dim = 0.5 / math.log(2.0) / dims
  assert diagnostics.kl_bits_per_image(per_dim, dims) == pytest.approx(
      0.72134752, rel=1e-7)
  with pytest.raises(ValueError, match="num_dims must be >= 1"):
    diagnostics.kl_bits_per_image(0.1, 0)


def test_active_units_count_dimensions_whose_mean_varies():
  # Two images with means +-a per dimension: population variance a^2.
  a = np.array([1.0, math.sqrt(0.005), math.sqrt(0.02), 0.0])
  means = np.stack([a, -a])
  np.testing.assert_allclose(diagnostics.posterior_mean_variances(means),
                             [1.0, 0.005, 0.02, 0.0])
  assert diagnostics.active_units(means) == 2  # Threshold 0.01.
  assert diagnostics.active_units(means, threshold=0.001) == 3
  assert diagnostics.active_units(means, threshold=2.0) == 0


def test_a_collapsed_encoder_has_no_active_unit_and_no_information():
  # (Not seed 0: the estimator's own draws use it, and correlated with the
  # means they would fake an information of 8e-3 nats.)
  rng = np.random.default_rng(7)
  # Every image gets (nearly) the same posterior, N(0, 1) in 8 dims.
  means = 1e-3 * rng.standard_normal((300, 8))
  log_variances = np.zeros((300, 8))
  assert diagnostics.active_units(means) == 0
  same = np.zeros((300, 8))
  assert diagnostics.mutual_information_bits(same, log_variances) == (
      pytest.approx(0.0, abs=1e-9))
  summary = diagnostics.summarize(means, log_variances,
                                  kl_bits_per_dim=0.004, num_dims=784)
  assert summary["active_units"] == 0 and summary["latent_dim"] == 8
  assert summary["kl_bits_per_image"] == pytest.approx(3.136)
  assert abs(summary["mutual_information_bits"]) < 1e-3
  assert summary["mutual_information_ceiling_bits"] == pytest.approx(
      math.log2(300))
  assert diagnostics.is_near_collapse(summary)
  warning = diagnostics.collapse_warning(summary, "at step 300")
  assert warning.startswith("WARNING: the global code z is near collapse at "
                            "step 300: KL 3.14 bits/image, 0/8 active units")
  assert "train.free_bits" in warning and "train.kl_warmup_steps" in warning


def test_mutual_information_of_a_gaussian_code():
  # z | x ~ N(m(x), s^2 I) with m(x) ~ N(0, sigma^2 I): q(z) = N(0, (sigma^2
  # + s^2) I), so I(x; z) = d/2 log2(1 + sigma^2 / s^2) = 2 bits here.
  rng = np.random.default_rng(1)
  count, dims, sigma2, s2 = 2000, 2, 3.0, 0.25
  means = math.sqrt(sigma2) * rng.standard_normal((count, dims))
  log_variances = np.full((count, dims), math.log(s2))
  expected = dims / 2 * math.log2(1 + sigma2 / s2)
  estimate = diagnostics.mutual_information_bits(means, log_variances,
                                                 samples_per_image=2, seed=3)
  assert estimate == pytest.approx(expected, abs=0.1)
  # Same seed, same estimate; the blocks of 256 rows change nothing.
  assert diagnostics.mutual_information_bits(
      means, log_variances, samples_per_image=2, seed=3) == estimate


def test_mutual_information_reaches_log_n_for_separated_codes():
  # 8 images whose posteriors do not overlap: z names the image, 3 bits.
  means = 100.0 * np.arange(8, dtype=np.float64)[:, None]
  log_variances = np.zeros((8, 1))
  assert diagnostics.mutual_information_bits(means, log_variances) == (
      pytest.approx(3.0, abs=1e-9))
  summary = diagnostics.summarize(means, log_variances, 0.1, 784)
  assert summary["active_units"] == 1
  assert not diagnostics.is_near_collapse(summary)  # KL 78.4 bits.
  assert diagnostics.collapse_warning(summary) is None
  # A KL of a few bits per image is near collapse even with active units.
  assert diagnostics.is_near_collapse(diagnostics.summarize(
      means, log_variances, 0.005, 784))


def test_no_global_code_is_not_a_collapse():
  summary = diagnostics.summarize(np.zeros((5, 0)), np.zeros((5, 0)), 0.0,
                                  784)
  assert summary["active_units"] == 0
  assert summary["mutual_information_bits"] == 0.0
  assert not diagnostics.is_near_collapse(summary)


def test_the_warning_offers_the_knobs_as_valid_set_flags():
  summary = diagnostics.summarize(np.zeros((4, 2)), np.zeros((4, 2)), 0.0,
                                  784)
  warning = diagnostics.collapse_warning(summary)
  for name, (_, value) in diagnostics.COLLAPSE_KNOBS.items():
    flag = f"--set train.{name}={value}"
    assert flag in warning
    # Each flag, as the warning writes it, is a valid setting of a run.
    config = configs.override(configs.get("tiny"), [flag[len("--set "):]
                                                    .split("=")])
    configs.validate(config)
    assert getattr(config.train, name) != getattr(configs.TrainConfig(), name)
  assert "python -m train.main" in warning and "When z collapses" in warning


def test_a_knob_that_is_no_train_field_is_a_bug(monkeypatch):
  monkeypatch.setattr(diagnostics, "COLLAPSE_KNOBS",
                      {"free_bitz": ("a typo", "1")})
  with pytest.raises(ValueError, match=r"no train field \['free_bitz'\]"):
    diagnostics.knobs_text()


def test_bad_moments_are_rejected():
  with pytest.raises(ValueError, match=r"shape \[N, d_z\]"):
    diagnostics.mutual_information_bits(np.zeros((3, 2)), np.zeros((3, 3)))
  with pytest.raises(ValueError, match="at least one image"):
    diagnostics.active_units(np.zeros((0, 2)))
  with pytest.raises(ValueError, match="finite"):
    diagnostics.summarize(np.full((2, 2), np.nan), np.zeros((2, 2)), 0.1, 10)
  with pytest.raises(ValueError, match="samples_per_image"):
    diagnostics.mutual_information_bits(np.zeros((2, 2)), np.zeros((2, 2)),
                                        samples_per_image=0)
