"""Named, typed configurations for every model of the paper.

One `Config` flows from the command line to the model. It is a tree of
dataclasses (`tfglv.configs.schema`) built from a named default
(`tfglv.configs.named`), then overridden field by field
(`tfglv.configs.tree`):

    config = tfglv.configs.get("cifar10", variant="glow")
    config = tfglv.configs.override(config, {"train.batch_size": "64"})
    model = tfglv.build_model(config.model)

`to_dict`/`from_dict` (and `save`/`load` as JSON) round-trip exactly, so a
training run writes its resolved config next to its checkpoints and every
later tool (evaluation, export) rebuilds the same model from it.
"""

from tfglv.configs.levels import GlowOriginalConfig
from tfglv.configs.named import get
from tfglv.configs.schema import (
    BAD_IMAGE_ACTIONS, CONFIG_NAMES, COMPUTE_DTYPES, CONV1X1_PARAMETERIZATIONS,
    COUPLING_TYPES, DEQUANTIZATIONS, MODEL_VARIANTS, STRATEGIES, Config,
    DataConfig, DecoderConfig, DequantizerConfig, EncoderConfig, LevelSteps,
    ModelConfig, PriorConfig, TrainConfig, field_names, validate,
    validate_model)
from tfglv.configs.tree import (canonical_key, from_dict, from_json, load,
                                migrate, model_from_dict, override, save,
                                to_dict, to_json)
