"""The global code's diagnostics at each evaluation of a training run.

The trainer's evaluation covers the test split (or its first
`train.eval_batches` global batches); this reads q(z|x) of the same images
(`GLVAE.posterior`, at the bin centres) and summarises it with
`tfglv.diagnostics`: KL in bits per image, active units and the mixture
estimate of I(x; z). Every worker computes it on its own (no collectives):
an encoder pass over the evaluated images.
"""

from typing import Dict

import numpy as np
import tensorflow as tf

from tfglv import configs
from tfglv import data
from tfglv import diagnostics

# The scalars an evaluation adds to TensorBoard's eval/ (and the log line).
SCALARS = ("kl_bits_per_image", "active_units", "mutual_information_bits")


def diagnose(model, config: configs.Config, strategy: tf.distribute.Strategy,
             kl_bits_per_dim: float, step: int) -> Dict:
  """{"kl_bits_per_image", "active_units", "latent_dim",
  "mutual_information_bits", "mutual_information_ceiling_bits",
  "collapse_warning" (text or None)}; {} for a model without z ("glow")."""
  if not model.latent_dim:
    return {}
  dataset = data.make_dataset(config, "test", config.train.batch_size,
                              training=False)
  if config.train.eval_batches:
    dataset = dataset.take(config.train.eval_batches)
  means, log_variances = [], []
  with strategy.scope():
    for batch in dataset:
      mean, log_variance = model.posterior(batch["image"])
      means.append(mean.numpy())
      log_variances.append(log_variance.numpy())
  summary = diagnostics.summarize(
      np.concatenate(means), np.concatenate(log_variances), kl_bits_per_dim,
      model.num_dims, seed=config.train.seed)
  kept = {key: summary[key] for key in SCALARS + (
      "latent_dim", "mutual_information_ceiling_bits")}
  kept["collapse_warning"] = diagnostics.collapse_warning(
      summary, f"at step {step}")
  return kept
