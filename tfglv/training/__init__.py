"""Training: the distributed trainer and what it is built from.

    config = tfglv.configs.get("tiny")
    summary = tfglv.training.train_and_evaluate(config, "/tmp/tfglv_tiny")

Modules: `trainer` (the loop), `steps` (compiled train/eval steps),
`optimizer` (AdamW and the learning-rate schedule), `distribute`
(strategies, workers' agreement), `cluster` (TF_CONFIG), `inputs` (the
distributed pipelines), `validation` (batch and data checks), `reporter`
(what a run writes besides checkpoints), `summaries` (TensorBoard, the
progress display), `monitor` (divergence warnings). The run directory
(config.json, checkpoints, restore) is `tfglv.rundir`.
"""

from tfglv.training import cluster
from tfglv.training import distribute
from tfglv.training import inputs
from tfglv.training import monitor
from tfglv.training import optimizer
from tfglv.training import reporter
from tfglv.training import signals
from tfglv.training import steps
from tfglv.training import summaries
from tfglv.training import trainer
from tfglv.training import validation
from tfglv.training.distribute import configure_cpu_devices
from tfglv.training.distribute import create_strategy
from tfglv.training.optimizer import build_optimizer
from tfglv.training.optimizer import WarmupExponentialDecay
from tfglv.training.signals import EXIT_STATUS as STOP_EXIT_STATUS
from tfglv.training.trainer import CheckpointSaveError
from tfglv.training.trainer import Trainer
from tfglv.training.trainer import train_and_evaluate

__all__ = [
    "cluster", "distribute", "inputs", "monitor", "optimizer", "reporter",
    "signals", "steps", "summaries", "trainer", "validation",
    "configure_cpu_devices", "create_strategy", "build_optimizer",
    "WarmupExponentialDecay", "STOP_EXIT_STATUS", "CheckpointSaveError",
    "Trainer", "train_and_evaluate",
]
