"""Every flow layer and bijector passes the same checks (flow_checks.py).

REGISTRY holds a small factory per class of `tfglv.flows` and
`tfglv.layers` (and the prior): tiny shapes, float64, weights moved off
their identity init. `test_registry_covers_every_class` discovers the
classes by introspecting those packages, so a new bijector or layer fails
until it has an entry here, and with it the checks.
"""

import dataclasses
import importlib
import inspect
import pkgutil
from typing import Any, Callable, Optional, Tuple

import keras
import pytest
import tensorflow as tf

import tfglv.flows
import tfglv.layers
from tfglv import flows
from tfglv import prior as prior_lib
from tfglv.flows import coupling
from tfglv.flows import edge_conv
from tfglv.flows import glow_coupling
from tfglv.flows import shared
from tfglv.layers import weight_norm
import flow_checks

# Bases that only share code; their concrete subclasses are registered.
ABSTRACT = {flows.FlowBijector, flows.FlowLayer, flows.LayerBijector,
            flows.Coupling,
            weight_norm.WeightNormLayer}


@dataclasses.dataclass(frozen=True)
class Entry:
  """How to test one class.

  Attributes:
    make: builds the object under test (float64, perturbed weights) from an
      input `x` (Keras layers may build on it).
    shape: of the input x.
    condition_dim: d_z of the condition z (0: none).
    num_trainable: Keras layers: the trainable variables expected.
  """
  make: Callable[[tf.Tensor], Any]
  shape: Tuple[int, ...]
  condition_dim: int = 0
  num_trainable: Optional[int] = None


def _layer(cls, build=False, stddev=0.2, **kwargs):
  def make(x):
    with flow_checks.dtype_policy("float64"):
      layer = cls(**kwargs)
      if build:
        layer.build(x.shape)
    flow_checks.perturb(layer.trainable_variables, stddev=stddev)
    return layer
  return make


def _bijector_of(make_layer, wrap=lambda b: b):
  return lambda x: wrap(make_layer(x).bijector)


_CONV_COUPLING = dict(num_channels=4, hidden_channels=5, split="alternate",
                      order="down", alpha=0.5, condition_dim=2)
_MLP_COUPLING = dict(num_channels=4, hidden_channels=5, event_rank=1)
_MULTISCALE = dict(image_shape=(4, 4, 2), num_steps=[1, [1], 1],
                   hidden_channels=[3, 3, 3], condition_dim=2, stddev=0.1)


_GLOW_ORIGINAL = dict(image_shape=(4, 4, 1), num_levels=2, num_steps=1,
                      hidden_channels=3, stddev=0.1)


def _shared_step(x):
  step = _layer(flows.GlowStepLayer, num_channels=4, hidden_channels=3,
                condition_dim=2)(x)
  return shared.SharedBlock(step, step)


def _chain(x):
  act = _layer(flows.ActNormLayer, num_channels=3)(x)
  conv = _layer(flows.InvertibleConv1x1Layer, num_channels=3)(x)
  return flows.FlowChain([act.bijector, conv.bijector])


REGISTRY = {
    # Bijectors.
    flows.ActNorm: [Entry(_bijector_of(_layer(flows.ActNormLayer,
                                              num_channels=3)), (2, 2, 2, 3))],
    flows.InvertibleConv1x1: [Entry(_bijector_of(_layer(
        flows.InvertibleConv1x1Layer, num_channels=3,
        parameterization="lu")), (2, 2, 2, 3))],
    flows.AdditiveCoupling: [Entry(_bijector_of(_layer(
        flows.CouplingLayer, transform="additive", **_CONV_COUPLING)),
                                   (2, 3, 3, 4), condition_dim=2)],
    flows.AffineCoupling: [
        Entry(_bijector_of(_layer(flows.CouplingLayer, **_MLP_COUPLING)),
              (3, 4)),
        # One image channel: the 2x2 sub-pixels are split.
        Entry(_bijector_of(_layer(
            flows.CouplingLayer, num_channels=1, hidden_channels=3,
            condition_dim=2)), (2, 4, 2, 1), condition_dim=2)],
    flows.FlowChain: [Entry(_chain, (2, 2, 2, 3))],
    flows.OnTrailingChannels: [Entry(_bijector_of(
        _layer(flows.ActNormLayer, num_channels=2),
        lambda b: flows.OnTrailingChannels(b, start=1)), (2, 2, 2, 3))],
    # Unconditional, two levels (the layer's entry has all three kinds).
    flows.MultiScaleFlow: [Entry(_bijector_of(_layer(
        flows.MultiScaleFlowLayer, image_shape=(2, 2, 2), num_steps=[1, 1],
        hidden_channels=[3, 3])), (2, 2, 2, 2))],
    flows.Squeeze: [Entry(lambda x: flows.Squeeze(), (2, 4, 4, 2))],
    flows.GlowCoupling: [
        Entry(_bijector_of(_layer(flows.GlowCouplingLayer, num_channels=4,
                                  hidden_channels=3)), (2, 3, 3, 4)),
        # Odd C: 2 channels condition 3.
        Entry(_bijector_of(_layer(flows.GlowCouplingLayer, num_channels=5,
                                  hidden_channels=3, transform="additive")),
              (2, 3, 2, 5))],
    flows.GaussianPrior: [
        Entry(_bijector_of(_layer(flows.GaussianPriorLayer, num_channels=4,
                                  num_conditioning=2)), (2, 3, 3, 4)),
        # The top prior: a learned map of positions.
        Entry(_bijector_of(_layer(flows.GaussianPriorLayer, num_channels=3,
                                  num_conditioning=0)), (2, 2, 3, 3))],
    flows.OriginalGlow: [Entry(_bijector_of(_layer(
        flows.OriginalGlowLayer, image_shape=(2, 2, 2), num_levels=1,
        num_steps=2, hidden_channels=3)), (2, 2, 2, 2))],
    # A Glow step through its shared function (inline when eager; the graph
    # path: tests/flows/test_shared.py).
    shared.SharedBlock: [Entry(_shared_step, (2, 2, 2, 4), condition_dim=2)],
    # Flow layers.
    flows.ActNormLayer: [
        Entry(_layer(flows.ActNormLayer, num_channels=3), (2, 2, 2, 3),
              num_trainable=2),
        Entry(_layer(flows.ActNormLayer, num_channels=3, event_rank=1),
              (3, 3), num_trainable=2)],
    flows.InvertibleConv1x1Layer: [
        Entry(_layer(flows.InvertibleConv1x1Layer, num_channels=3),
              (2, 2, 2, 3), num_trainable=1),
        Entry(_layer(flows.InvertibleConv1x1Layer, num_channels=4,
                     event_rank=1, parameterization="lu"),
              (3, 4), num_trainable=3)],
    flows.CouplingLayer: [
        Entry(_layer(flows.CouplingLayer, **_CONV_COUPLING), (2, 3, 3, 4),
              condition_dim=2, num_trainable=7),
        Entry(_layer(flows.CouplingLayer, transform="additive",
                     **_MLP_COUPLING), (3, 4), num_trainable=7)],
    flows.GlowStepLayer: [
        Entry(_layer(flows.GlowStepLayer, num_channels=4, hidden_channels=3,
                     condition_dim=2), (2, 2, 2, 4), condition_dim=2,
              num_trainable=5 + 4 * 7),
        Entry(_layer(flows.GlowStepLayer, num_channels=4, hidden_channels=3,
                     event_rank=1, name_prefix="step0_"), (3, 4),
              num_trainable=5 + 4 * 7),
        # Grayscale: all four split patterns on sub-pixels.
        Entry(_layer(flows.GlowStepLayer, num_channels=1, hidden_channels=3,
                     condition_dim=2), (2, 4, 4, 1), condition_dim=2,
              num_trainable=5 + 4 * 7)],
    flows.PriorBlockLayer: [Entry(_layer(
        flows.PriorBlockLayer, num_channels=8, factor=4, hidden_channels=3,
        condition_dim=2), (2, 2, 2, 8), condition_dim=2,
                                  num_trainable=1 + 7 + 2)],
    flows.MultiScaleFlowLayer: [Entry(_layer(
        flows.MultiScaleFlowLayer, **_MULTISCALE), (2, 4, 4, 2),
                                      condition_dim=2,
                                      num_trainable=3 * 33 + 10)],
    flows.GlowCouplingLayer: [Entry(_layer(
        flows.GlowCouplingLayer, num_channels=4, hidden_channels=3),
                                    (2, 3, 3, 4), num_trainable=9)],
    flows.GaussianPriorLayer: [Entry(_layer(
        flows.GaussianPriorLayer, num_channels=4, num_conditioning=2),
                                     (2, 3, 3, 4), num_trainable=3)],
    flows.OriginalGlowStepLayer: [Entry(_layer(
        flows.OriginalGlowStepLayer, num_channels=4, hidden_channels=3,
        conv1x1_parameterization="lu"), (2, 2, 2, 4),
                                        num_trainable=2 + 3 + 9)],
    # Grayscale, two levels: 4x4x1 -> 2x2x4 (split 2) -> 1x1x8.
    flows.OriginalGlowLayer: [Entry(_layer(
        flows.OriginalGlowLayer, **_GLOW_ORIGINAL), (2, 4, 4, 1),
                                    num_trainable=2 * (12 + 3))],
    prior_lib.PriorFlowLayer: [Entry(_layer(
        prior_lib.PriorFlowLayer, latent_dim=4, num_steps=1, hidden_units=3),
                                     (3, 4), num_trainable=33)],
    # Networks and weight-normalised layers (no bijector).
    coupling.ConvCouplingNetwork: [Entry(_layer(
        coupling.ConvCouplingNetwork, in_channels=2, out_channels=4,
        hidden_channels=3, condition_dim=2), (2, 3, 3, 2), condition_dim=2,
                                         num_trainable=7)],
    coupling.MLPCouplingNetwork: [Entry(_layer(
        coupling.MLPCouplingNetwork, in_channels=2, out_channels=4,
        hidden_channels=3), (3, 2), num_trainable=7)],
    weight_norm.WeightNormDense: [Entry(_layer(
        weight_norm.WeightNormDense, build=True, units=3, init_scale=0.1),
                                        (3, 4), num_trainable=3)],
    weight_norm.WeightNormConv2D: [Entry(_layer(
        weight_norm.WeightNormConv2D, build=True, filters=3, kernel_size=3),
                                         (2, 3, 3, 2), num_trainable=3)],
    glow_coupling.GlowCouplingNetwork: [Entry(_layer(
        glow_coupling.GlowCouplingNetwork, in_channels=2, out_channels=4,
        hidden_channels=3), (2, 3, 3, 2), num_trainable=9)],
    edge_conv.EdgeConv2D: [Entry(_layer(
        edge_conv.EdgeConv2D, build=True, filters=3), (2, 3, 4, 2),
                                 num_trainable=1)],
    edge_conv.ZeroEdgeConv2D: [Entry(_layer(
        edge_conv.ZeroEdgeConv2D, build=True, filters=3), (2, 3, 4, 2),
                                     num_trainable=3)],
    edge_conv.WeightNormEdgeConv2D: [Entry(_layer(
        edge_conv.WeightNormEdgeConv2D, build=True, filters=3), (2, 3, 4, 2),
                                           num_trainable=3)],
}

_CASES = [(cls, i) for cls, entries in REGISTRY.items()
          for i in range(len(entries))]


def _cases(kind):
  return pytest.mark.parametrize(
      "cls,index", [c for c in _CASES if issubclass(c[0], kind)],
      ids=lambda v: v.__name__ if isinstance(v, type) else str(v))


def _setup(cls, index):
  """(object under test, x, condition) of one registry entry."""
  entry = REGISTRY[cls][index]
  x = tf.random.stateless_normal(entry.shape, [index, 1], dtype=tf.float64)
  condition = {}
  if entry.condition_dim:
    condition["z"] = tf.random.stateless_normal(
        [entry.shape[0], entry.condition_dim], [index, 2], dtype=tf.float64)
  subject = entry.make(x)
  assert type(subject) is cls
  return subject, x, condition


def _discover():
  found = set()
  for package in (tfglv.flows, tfglv.layers):
    for info in pkgutil.iter_modules(package.__path__,
                                     package.__name__ + "."):
      module = importlib.import_module(info.name)
      for _, obj in inspect.getmembers(module, inspect.isclass):
        if obj.__module__ == module.__name__ and issubclass(
            obj, (flows.FlowBijector, keras.layers.Layer)):
          found.add(obj)
  return found


def test_registry_covers_every_class():
  found = _discover()
  missing = found - ABSTRACT - set(REGISTRY)
  assert not missing, ("Add a REGISTRY entry for: " +
                       ", ".join(sorted(c.__name__ for c in missing)))
  assert ABSTRACT <= found  # no stale names
  assert not ABSTRACT & set(REGISTRY)


@_cases((flows.FlowBijector, flows.FlowLayer))
def test_bijector(cls, index):
  subject, x, condition = _setup(cls, index)
  bijector = (subject.bijector if isinstance(subject, flows.FlowLayer) else
              subject)
  flow_checks.check_bijector(bijector, x, bijector.forward_min_event_ndims,
                             **condition)


def _run(layer, x, condition):
  """A function of `cached` giving the layer's outputs on x."""
  def run(cached):
    if not isinstance(layer, flows.FlowLayer):  # a network: z positional
      return [layer(x, *condition.values(), cached=cached)]
    bijector = layer.make_bijector(cached=cached)
    y, ldj = bijector.forward_and_log_det(x, **condition)
    x_back, ildj = bijector.inverse_and_log_det(tf.identity(y), **condition)
    return [y, ldj, x_back, ildj]
  return run


def _loss(layer, x, condition):
  def loss():
    outputs = _run(layer, x, condition)(False)
    if len(outputs) == 1:  # a network: any loss that sees every output
      return tf.reduce_sum(outputs[0] * tf.sin(outputs[0] + 1.0))
    y, ldj = outputs[:2]
    return tf.reduce_mean(0.5 * tf.reduce_sum(tf.square(y)) - ldj)
  return loss


@_cases(keras.layers.Layer)
def test_config_round_trip(cls, index):
  layer, x, _ = _setup(cls, index)

  def build(clone):
    if not clone.built:
      clone.build(x.shape)

  flow_checks.check_config_round_trip(layer, build)


@_cases(keras.layers.Layer)
def test_trainable_variable_count_and_one_step_trains_all(cls, index):
  layer, x, condition = _setup(cls, index)
  assert len(layer.trainable_variables) == REGISTRY[cls][index].num_trainable
  flow_checks.check_one_step_trains_every_variable(
      layer, _loss(layer, x, condition))


@_cases(keras.layers.Layer)
def test_cached_matches_uncached(cls, index):
  layer, x, condition = _setup(cls, index)
  flow_checks.check_cached_matches(layer, _run(layer, x, condition),
                                   rtol=1e-9)


@_cases(flows.FlowLayer)
def test_initializing_reaches_every_actnorm(cls, index):
  layer, x, condition = _setup(cls, index)
  flow_checks.check_initializing_reaches_every_actnorm(layer, x, **condition)
