"""Run directories: the resolved config, checkpoints, recovery and restore.

A training run's directory (its `--workdir`) holds:

    <workdir>/config.json        the resolved Config of the run
    <workdir>/checkpoints/       tf.train.CheckpointManager files
    <workdir>/checkpoints/corrupt/   unreadable checkpoints, moved aside

Training writes it; evaluation and export open it. All three go through
this package, which sits below them (flows -> model -> rundir -> training /
evaluation / export -> entry points):

    config, model, step = tfglv.rundir.restore("/tmp/tfglv_tiny")

Modules: `layout` (paths, the write probe), `config_file` (config.json and
the resume check), `checkpoints` (the checkpoint object, restore),
`recovery` (finding a readable checkpoint after a crash), `lock` (one
writer per directory).
"""

from tfglv.rundir import checkpoints
from tfglv.rundir import config_file
from tfglv.rundir import layout
from tfglv.rundir import lock
from tfglv.rundir import recovery
from tfglv.rundir.checkpoints import layout_hint
from tfglv.rundir.checkpoints import make_checkpoint
from tfglv.rundir.checkpoints import restore
from tfglv.rundir.checkpoints import restore_checkpoint
from tfglv.rundir.checkpoints import saved_variable_count
from tfglv.rundir.config_file import check_resume_config
from tfglv.rundir.config_file import config_differences
from tfglv.rundir.config_file import describe_differences
from tfglv.rundir.config_file import load_config
from tfglv.rundir.config_file import load_history
from tfglv.rundir.config_file import RESUMABLE_FIELDS
from tfglv.rundir.config_file import save_config
from tfglv.rundir.config_file import saved_config
from tfglv.rundir.layout import check_workdir
from tfglv.rundir.layout import checkpoint_directory
from tfglv.rundir.layout import CHECKPOINT_DIR
from tfglv.rundir.layout import CONFIG_FILE
from tfglv.rundir.layout import config_path
from tfglv.rundir.layout import latest_checkpoint

__all__ = [
    "checkpoints", "config_file", "layout", "lock", "recovery", "layout_hint",
    "make_checkpoint", "restore", "restore_checkpoint",
    "saved_variable_count",
    "check_resume_config", "config_differences", "describe_differences",
    "load_config", "load_history", "RESUMABLE_FIELDS", "save_config",
    "saved_config", "check_workdir", "checkpoint_directory",
    "CHECKPOINT_DIR", "CONFIG_FILE", "config_path", "latest_checkpoint",
]
