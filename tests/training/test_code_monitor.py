"""Tests of tfglv.training.code_monitor on a freshly initialised tiny model."""

import numpy as np
import tensorflow as tf

from tfglv import data
from tfglv import diagnostics
from tfglv import model as model_lib
from tfglv.training import code_monitor

from train_testlib import tiny


def test_diagnose_reads_the_evaluated_test_images():
  config = tiny(data__synthetic_size=256, train__batch_size=8,
                train__eval_batches=2)
  model = model_lib.build_model(config)
  images, _ = data.load_arrays(config, "test")
  model.initialize(images[:16], seed=0)
  result = code_monitor.diagnose(model, config, tf.distribute.get_strategy(),
                                 kl_bits_per_dim=0.001, step=7)
  # The first 2 batches of 8 test images.
  means, log_variances = model.posterior(images[:16])
  expected = diagnostics.summarize(means.numpy(), log_variances.numpy(),
                                   0.001, 16 * 16 * 3, seed=config.train.seed)
  for key in code_monitor.SCALARS + ("latent_dim",
                                     "mutual_information_ceiling_bits"):
    np.testing.assert_allclose(result[key], expected[key], rtol=1e-5)
  assert result["mutual_information_ceiling_bits"] == 4.0  # log2 16.
  # A fresh encoder outputs N(0, 0.01^2)-sized means: collapsed at step 7.
  assert result["active_units"] == 0
  assert result["collapse_warning"].startswith(
      "WARNING: the global code z is near collapse at step 7: KL 0.77 "
      "bits/image, 0/")


def test_no_global_code_no_diagnostics():
  config = tiny(model__variant="glow")
  assert code_monitor.diagnose(model_lib.build_model(config), config,
                               tf.distribute.get_strategy(), 0.0, 1) == {}
