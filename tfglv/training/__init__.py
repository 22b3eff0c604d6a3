"""Training: the distributed trainer and what it is built from.

    import tfglv
    config = tfglv.configs.get("tiny")
    summary = tfglv.training.train_and_evaluate(config, "/tmp/tfglv_tiny")
    config, model, step = tfglv.training.restore_from_workdir("/tmp/tfglv_tiny")

Modules: `trainer` (the loop), `steps` (compiled train/eval steps),
`optimizer` (AdamW and the learning-rate schedule), `distribute`
(strategies), `checkpoints` (workdir layout, restore), `summaries`
(TensorBoard, progress, image grids).
"""

from tfglv.training import checkpoints
from tfglv.training import distribute
from tfglv.training import optimizer
from tfglv.training import steps
from tfglv.training import summaries
from tfglv.training import trainer
from tfglv.training.checkpoints import restore_from_workdir
from tfglv.training.distribute import configure_cpu_devices
from tfglv.training.distribute import create_strategy
from tfglv.training.optimizer import build_optimizer
from tfglv.training.optimizer import WarmupExponentialDecay
from tfglv.training.trainer import Trainer
from tfglv.training.trainer import train_and_evaluate

__all__ = [
    "checkpoints", "distribute", "optimizer", "steps", "summaries", "trainer",
    "restore_from_workdir", "configure_cpu_devices", "create_strategy",
    "build_optimizer", "WarmupExponentialDecay", "Trainer",
    "train_and_evaluate",
]
