"""KeepsArguments: one statement makes an argument an attribute and config."""

import keras
import pytest

import tfglv  # noqa: F401  (imports TF quietly)
from tfglv.flows import actnorm
from tfglv.layers import arguments
from tfglv.layers import weight_norm


class _Scaled(arguments.KeepsArguments, keras.layers.Layer):

  def __init__(self, units, scale=2.0, **kwargs):
    super().__init__(**kwargs)
    self.keep_arguments(units=units, scale=float(scale))


def test_kept_arguments_are_attributes_and_config():
  layer = _Scaled(3, scale=4, name="s")
  assert (layer.units, layer.scale) == (3, 4.0)
  config = layer.get_config()
  assert config["units"] == 3 and config["scale"] == 4.0
  assert config["name"] == "s"
  rebuilt = _Scaled.from_config(config)
  assert (rebuilt.units, rebuilt.scale, rebuilt.name) == (3, 4.0, "s")


def test_forgotten_arguments_leave_the_config_only():
  conv = weight_norm.WeightNormConv2D(5, kernel_size=3, name="c")
  config = conv.get_config()
  assert "units" not in config
  assert config["filters"] == 5 and config["kernel_size"] == 3
  assert conv.units == 5  # Still the attribute the base layer reads.
  assert weight_norm.WeightNormConv2D.from_config(config).filters == 5


def test_flow_layers_rebuild_from_their_config():
  layer = actnorm.ActNormLayer(4, event_rank=1, epsilon=1e-3, name="a")
  rebuilt = actnorm.ActNormLayer.from_config(layer.get_config())
  assert (rebuilt.num_channels, rebuilt.event_rank, rebuilt.epsilon) == (
      4, 1, 1e-3)


def test_a_kept_argument_can_be_updated_by_a_subclass():
  layer = _Scaled(3)
  layer.keep_arguments(scale=5.0)
  assert layer.get_config()["scale"] == 5.0 and layer.scale == 5.0
  with pytest.raises(KeyError):
    layer.forget_arguments("nonexistent")
