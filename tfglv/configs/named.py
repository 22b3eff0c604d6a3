"""The paper's named configs (DESIGN sections 2-5) and `get`."""

from tfglv.configs import schema
from tfglv.configs import tree
from tfglv.configs.levels import GlowOriginalConfig
from tfglv.configs.schema import (Config, DataConfig, DecoderConfig,
                                  EncoderConfig, ModelConfig, PriorConfig,
                                  TrainConfig)


def _larger_dataset_train(batch_size: int) -> TrainConfig:
  """The optimiser of every dataset but CIFAR-10 (DESIGN section 5)."""
  return TrainConfig(batch_size=batch_size, warmup_steps=200,
                     weight_decay=5e-4)


# The paper's models. Each level of the encoder halves the image down to
# 4x4; the decoder lists steps and widths per level (DESIGN sections 2-4).
# "glow_original" is Glow's model of the same data (its code's README): L
# levels of K steps at width 512.


def _cifar10() -> Config:
  return Config(
      name="cifar10",
      data=DataConfig(dataset="cifar10", augmentation="cifar"),
      train=TrainConfig(batch_size=512, warmup_steps=50, weight_decay=1e-6),
      model=ModelConfig(
          encoder=EncoderConfig(channels=[48, 96, 96], out_channels=8),
          image_size=32, latent_dim=64,
          prior=PriorConfig(num_steps=2, hidden_units=256),
          decoder=DecoderConfig(num_steps=[2, [6, 6], [6, 6], 4],
                                hidden_channels=[24, 512, 512, 512]),
          glow_original=GlowOriginalConfig(num_levels=3, num_steps=32)))


def _imagenet64() -> Config:
  return Config(
      name="imagenet64",
      data=DataConfig(dataset="downsampled_imagenet/64x64",
                      augmentation="none"),
      train=_larger_dataset_train(batch_size=256),
      model=ModelConfig(
          encoder=EncoderConfig(channels=[48, 96, 96, 192], out_channels=32),
          image_size=64, latent_dim=128,
          prior=PriorConfig(num_steps=2, hidden_units=256),
          decoder=DecoderConfig(num_steps=[2, [8, 8], [8, 8], [6, 6], 4],
                                hidden_channels=[24, 512, 512, 512, 512]),
          glow_original=GlowOriginalConfig(num_levels=4, num_steps=48)))


def _lsun128() -> Config:
  return Config(
      name="lsun128",
      data=DataConfig(dataset="lsun/bedroom", augmentation="center_crop"),
      train=_larger_dataset_train(batch_size=256),
      model=ModelConfig(
          encoder=EncoderConfig(channels=[48, 96, 96, 192, 192],
                                out_channels=32),
          image_size=128, latent_dim=256,
          prior=PriorConfig(num_steps=2, hidden_units=512),
          decoder=DecoderConfig(
              num_steps=[2, [16, 16], [16, 16], [8, 8], [4, 4], 2],
              hidden_channels=[24, 256, 256, 256, 256, 512]),
          glow_original=GlowOriginalConfig(num_levels=5, num_steps=64)))


def _celebahq256() -> Config:
  """LSUN's model and optimiser, one level deeper, at batch size 40."""
  return tree.override(_lsun128(), {
      "name": "celebahq256",
      "model.image_size": 256,
      "model.encoder.channels": [48, 96, 96, 192, 192, 256],
      "model.decoder.num_steps":
          [2, [12, 12], [10, 10], [8, 8], [4, 4], [2, 2], 1],
      "model.decoder.hidden_channels": [24, 256, 256, 256, 256, 256, 512],
      "model.glow_original.num_levels": 6,
      "model.glow_original.num_steps": 32,
      "data.dataset": "celeb_a_hq/256", "data.augmentation": "flip",
      "train.batch_size": 40})


def _tiny() -> Config:
  """A few-thousand-parameter model for tests and the default CPU run."""
  return Config(
      name="tiny",
      model=ModelConfig(
          image_size=16, latent_dim=8,
          encoder=EncoderConfig(channels=[8, 8], out_channels=4),
          prior=PriorConfig(num_steps=1, hidden_units=16),
          decoder=DecoderConfig(num_steps=[1, [1, 1], 1],
                                hidden_channels=[8, 16, 16]),
          # Two squeezes, as the decoder's: the same image sizes fit.
          glow_original=GlowOriginalConfig(num_levels=2, num_steps=2,
                                           hidden_channels=16)),
      data=DataConfig(dataset="synthetic", augmentation="none",
                      synthetic_size=2048, shuffle_buffer=2048),
      train=TrainConfig(batch_size=32, num_steps=300, warmup_steps=20,
                        init_batch_size=128, checkpoint_every=100,
                        eval_every=100, eval_batches=4, log_every=10,
                        sample_every=100))


_FACTORIES = {
    "tiny": _tiny,
    "cifar10": _cifar10,
    "imagenet64": _imagenet64,
    "lsun128": _lsun128,
    "celebahq256": _celebahq256,
}
assert tuple(_FACTORIES) == schema.CONFIG_NAMES


def get(name: str, variant: str = "glvae", **overrides) -> Config:
  """Returns the named config for model `variant`, validated.

  Args:
    name: one of `CONFIG_NAMES`.
    variant: one of `MODEL_VARIANTS`.
    **overrides: dotted field names with `__` for dots, e.g.
      `train__batch_size=64`; 0.2 names work too (`model="glow"`,
      `image_size=32`; see `tfglv.configs.tree`).
  """
  if name not in _FACTORIES:
    raise ValueError(f"Unknown config name {name!r}; allowed: "
                     f"{', '.join(schema.CONFIG_NAMES)}.")
  config = tree.override(
      _FACTORIES[name](),
      [("model.variant", variant)] +
      [(k.replace("__", "."), v) for k, v in overrides.items()])
  return schema.validate(config)
