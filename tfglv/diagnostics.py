"""How much the global code z carries: diagnostics of q(z|x) over a split.

Pure numpy functions of the posterior means and log-variances of a set of
images (`GLVAE.posterior`), and of the ELBO's KL term:

    kl_bits_per_image  = kl [bits/dim] * D           (D = H * W * C)
    active units       = #{u : Var_x(E_q[z_u | x]) > 0.01}   (Burda et al.
                         2016, "Importance Weighted Autoencoders", §5.2)
    mutual information I(x; z) = E_x[KL(q(z|x) || q(z))], with the aggregate
                         posterior q(z) = (1/N) sum_j q(z|x_j), the mixture
                         of the N evaluated images' posteriors

The mutual information uses the minibatch ("mixture") estimator of Hoffman
& Johnson (2016, "ELBO surgery") and He et al. (2019, "Lagging inference
networks"): for each image i, S draws z_is ~ q(z|x_i) and

    I ~ (1/N) sum_i (1/S) sum_s [log q(z_is|x_i) - log (1/N) sum_j q(z_is|x_j)]

It can never exceed log N (every term is at most log N), so read it
against `mutual_information_ceiling_bits`; a collapsed encoder (the same
q(z|x) for every x) gives exactly 0. In expectation the ELBO's KL term is
the mutual information plus KL(q(z) || p(z)), so KL bits/image bound it
from above.

`summarize` gathers all three; `collapse_warning` turns them into the
WARNING the trainer and `train.evaluate --task=bpd` print.
"""

import dataclasses
import math
from typing import Dict, Optional

import numpy as np

from tfglv import configs

# Burda et al. (2016): a unit is active when its posterior mean varies by
# more than this over the data.
ACTIVE_UNIT_THRESHOLD = 0.01
# Below this many bits per image z can tell apart at most 2**8 images.
NEAR_COLLAPSE_KL_BITS = 8.0
# The training knobs against collapse (`tfglv.kl_budget`): train.* field ->
# (what it is, an example value for the warning's `--set`).
COLLAPSE_KNOBS = {
    "free_bits": ("free bits, in bits per z dimension", "0.5"),
    "kl_warmup_steps": ("a KL warm-up: its weight ramps from 0 to 1 over N "
                        "steps", "2000"),
}
_LOG_2_PI = math.log(2.0 * math.pi)
# Images whose z draws are scored against all N posteriors at once.
_BLOCK = 256


def _check_moments(means, log_variances):
  means = np.asarray(means, np.float64)
  log_variances = np.asarray(log_variances, np.float64)
  if means.ndim != 2 or means.shape != log_variances.shape:
    raise ValueError(f"means and log_variances must both have shape "
                     f"[N, d_z]; got {means.shape} and {log_variances.shape}.")
  if len(means) < 1:
    raise ValueError("The diagnostics need the posterior of at least one "
                     "image.")
  if not (np.all(np.isfinite(means)) and np.all(np.isfinite(log_variances))):
    raise ValueError("means and log_variances must be finite.")
  return means, log_variances


def kl_bits_per_image(kl_bits_per_dim: float, num_dims: int) -> float:
  """The ELBO's KL term per image, in bits: kl [bits/dim] * D."""
  if num_dims < 1:
    raise ValueError(f"num_dims must be >= 1; got {num_dims}.")
  return float(kl_bits_per_dim) * num_dims


def posterior_mean_variances(means) -> np.ndarray:
  """Var_x(E_q[z_u | x]) per dimension u over the images: [d_z].

  The population variance (over the N given images, ddof 0).
  """
  means, _ = _check_moments(means, means)
  return np.var(means, axis=0)


def active_units(means, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
  """Dimensions whose posterior mean varies by more than `threshold`."""
  if not threshold >= 0:
    raise ValueError(f"threshold must be >= 0; got {threshold}.")
  return int(np.sum(posterior_mean_variances(means) > threshold))


def _log_densities(z, means, log_variances) -> np.ndarray:
  """log q(z_b | x_j) of diagonal Gaussians: [B, N] for z [B, d]."""
  precisions = np.exp(-log_variances)  # [N, d]
  squares = ((z ** 2) @ precisions.T - 2.0 * z @ (means * precisions).T +
             np.sum(means ** 2 * precisions, axis=1))
  normalisers = np.sum(log_variances, axis=1) + means.shape[1] * _LOG_2_PI
  return -0.5 * (squares + normalisers)


def mutual_information_bits(means, log_variances, samples_per_image: int = 1,
                            seed: int = 0) -> float:
  """The mixture estimate of I(x; z) in bits (see the module docstring).

  Args:
    means, log_variances: [N, d_z] of q(z|x) for the N images; q(z) is
      their mixture.
    samples_per_image: S, draws of z per image.
    seed: of the draws (numpy), so the estimate is reproducible.

  Returns:
    The estimate in bits, in [0, log2 N] up to sampling noise (0 when
    d_z = 0). Cost: S N^2 d_z multiply-adds, in blocks of 256 images.
  """
  means, log_variances = _check_moments(means, log_variances)
  if samples_per_image < 1:
    raise ValueError(f"samples_per_image must be >= 1; got "
                     f"{samples_per_image}.")
  count, dims = means.shape
  if dims == 0:
    return 0.0
  rng = np.random.default_rng(seed)
  total = 0.0
  for _ in range(samples_per_image):
    z = means + np.exp(0.5 * log_variances) * rng.standard_normal(means.shape)
    for start in range(0, count, _BLOCK):
      rows = slice(start, min(start + _BLOCK, count))
      log_q = _log_densities(z[rows], means, log_variances)  # [B, N]
      own = log_q[np.arange(rows.stop - rows.start), np.arange(rows.start,
                                                               rows.stop)]
      peak = np.max(log_q, axis=1)
      log_mixture = peak + np.log(np.mean(np.exp(log_q - peak[:, None]),
                                          axis=1))
      total += float(np.sum(own - log_mixture))
  return total / (samples_per_image * count) / math.log(2.0)


def summarize(means, log_variances, kl_bits_per_dim: float, num_dims: int,
              threshold: float = ACTIVE_UNIT_THRESHOLD,
              samples_per_image: int = 1, seed: int = 0) -> Dict:
  """All diagnostics of z over a set of images, as a JSON-ready dict.

  Keys: "kl_bits_per_image", "active_units", "latent_dim",
  "active_unit_threshold", "mutual_information_bits",
  "mutual_information_ceiling_bits" (log2 N, the estimator's maximum),
  "diagnostic_images" (N) and "posterior_mean_variances" ([d_z]).
  """
  means, log_variances = _check_moments(means, log_variances)
  variances = posterior_mean_variances(means)
  return {
      "kl_bits_per_image": kl_bits_per_image(kl_bits_per_dim, num_dims),
      "active_units": int(np.sum(variances > threshold)),
      "latent_dim": int(means.shape[1]),
      "active_unit_threshold": float(threshold),
      "mutual_information_bits": mutual_information_bits(
          means, log_variances, samples_per_image, seed),
      "mutual_information_ceiling_bits": math.log2(len(means)),
      "diagnostic_images": int(len(means)),
      "posterior_mean_variances": [float(v) for v in variances],
  }


def format_summary(summary: Dict) -> str:
  """One line: KL bits/image, active units, I(x; z)."""
  return (f"KL {summary['kl_bits_per_image']:.2f} bits/image, "
          f"{summary['active_units']}/{summary['latent_dim']} active units "
          f"(Var_x E[z|x] > {summary['active_unit_threshold']:g}), "
          f"I(x;z) ~ {summary['mutual_information_bits']:.2f} bits (mixture "
          f"estimate over {summary['diagnostic_images']} images, at most "
          f"{summary['mutual_information_ceiling_bits']:.2f})")


def is_near_collapse(summary: Dict) -> bool:
  """No active unit, or a KL term under NEAR_COLLAPSE_KL_BITS per image.

  Always False without a global code (d_z = 0, "glow").
  """
  if summary["latent_dim"] == 0:
    return False
  return (summary["active_units"] == 0 or
          summary["kl_bits_per_image"] < NEAR_COLLAPSE_KL_BITS)


def knobs_text() -> str:
  """The knobs against collapse, as `python -m train.main` flags."""
  fields = {field.name for field in dataclasses.fields(configs.TrainConfig)}
  missing = set(COLLAPSE_KNOBS) - fields
  if missing:
    raise ValueError(f"COLLAPSE_KNOBS names no train field {sorted(missing)}.")
  flags = [f"--set train.{name}={value}"
           for name, (_, value) in COLLAPSE_KNOBS.items()]
  named = [f"{what} ({flag})"
           for (what, _), flag in zip(COLLAPSE_KNOBS.values(), flags)]
  return (f"train with {' or '.join(named)}, e.g. python -m train.main "
          f"--workdir=NEW_DIR <your flags> {flags[0]}; the reported bits/dim "
          f"stay the true bound (README, \"When z collapses\")")


def collapse_warning(summary: Dict, where: str = "") -> Optional[str]:
  """The WARNING text when z is near collapse (`is_near_collapse`), else
  None. `where` says what was evaluated, e.g. "at step 300"."""
  if not is_near_collapse(summary):
    return None
  where = f" {where}" if where else ""
  return (f"WARNING: the global code z is near collapse{where}: "
          f"{format_summary(summary)}. z then carries at most a few bits "
          f"about each image, so switches, z-interpolations and z probes "
          f"show little; {knobs_text()}.")
