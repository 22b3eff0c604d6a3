"""A stand-in training workdir, for export tests and benchmarks.

It has the trainer's layout (`config.json`, `checkpoints/` holding
`tf.train.Checkpoint(model=..., step=...)`) and a model that looks trained
to the exporter: ActNorm initialised on real images, and every trainable
weight moved off its (often identity) initialisation so that couplings,
1x1 convolutions and the encoder all do something. It has not learned
anything; use a real run when the numbers matter.
"""

import numpy as np
import tensorflow as tf

from tfglv import configs
from tfglv import model as model_lib
from tfglv import rundir


def write_demo_workdir(workdir: str, config: configs.Config, images,
                       step: int = 100, stddev: float = 0.02,
                       seed: int = 0) -> str:
  """Writes the workdir; returns the checkpoint path.

  Args:
    workdir: the directory to create.
    config: the run's config (saved as config.json).
    images: uint8 [N, H, W, C] for ActNorm's data-dependent initialisation.
    step: the training step recorded in the checkpoint.
    stddev: scale of the weight perturbation, divided by sqrt(fan-in) for
      kernels so that deep models stay well-conditioned.
    seed: seeds the perturbation.
  """
  model = model_lib.build_model(config.model)
  model.initialize(images)
  rng = np.random.RandomState(seed)
  for variable in model.trainable_variables:
    scale = stddev
    if len(variable.shape) >= 2:
      scale /= np.sqrt(np.prod(variable.shape[:-1]))
    noise = rng.normal(0.0, scale, variable.shape).astype(variable.dtype)
    variable.assign(variable.numpy() + noise)
  tf.io.gfile.makedirs(workdir)
  rundir.save_config(workdir, config)
  state = rundir.make_checkpoint(
      model, step=tf.Variable(step, dtype=tf.int64, trainable=False))
  manager = tf.train.CheckpointManager(
      state, rundir.checkpoint_directory(workdir), max_to_keep=1)
  return manager.save(checkpoint_number=step)
