"""The refined Glow step on images and on vectors (the prior's step)."""

import pytest
import tensorflow as tf

from tfglv import flows
import flow_checks

_KINDS = ["ActNormLayer", "InvertibleConv1x1Layer", "CouplingLayer",
          "CouplingLayer", "ActNormLayer", "CouplingLayer", "CouplingLayer"]
_PATTERNS = [("continuous", "up"), ("continuous", "down"),
             ("alternate", "up"), ("alternate", "down")]


def test_glow_step_bijector():
  with flow_checks.dtype_policy("float64"):
    layer = flows.GlowStepLayer(4, hidden_channels=6, condition_dim=3)
  flow_checks.perturb(layer.trainable_variables, stddev=0.2)
  x = tf.random.stateless_normal([2, 2, 2, 4], [0, 1], dtype=tf.float64)
  z = tf.random.stateless_normal([2, 3], [0, 2], dtype=tf.float64)
  flow_checks.check_bijector(layer.bijector, x, event_ndims=3, z=z)
  assert [type(p).__name__ for p in layer.pieces] == _KINDS
  assert [(p.split, p.order) for p in layer.pieces
          if isinstance(p, flows.CouplingLayer)] == _PATTERNS
  assert layer.conv1x1.name == "conv1x1"


def test_vector_step_is_the_prior_step():
  with flow_checks.dtype_policy("float64"):
    layer = flows.GlowStepLayer(6, hidden_channels=5, event_rank=1,
                                name_prefix="step3_")
  flow_checks.perturb(layer.trainable_variables, stddev=0.2)
  z = tf.random.stateless_normal([4, 6], [0, 3], dtype=tf.float64)
  flow_checks.check_bijector(layer.bijector, z, event_ndims=1)
  assert [type(p).__name__ for p in layer.pieces] == _KINDS
  assert [p.name for p in layer.pieces] == [
      "step3_actnorm_in", "step3_linear", "step3_coupling_continuous_up",
      "step3_coupling_continuous_down", "step3_actnorm_mid",
      "step3_coupling_alternate_up", "step3_coupling_alternate_down"]
  assert all(p.event_rank == 1 for p in layer.pieces)
  assert [(p.split, p.order) for p in layer.pieces
          if isinstance(p, flows.CouplingLayer)] == _PATTERNS
  assert type(layer.coupling_continuous_up.network).__name__ == (
      "MLPCouplingNetwork")


def test_bad_event_rank():
  with pytest.raises(ValueError, match="event_rank must be 1"):
    flows.GlowStepLayer(4, hidden_channels=4, event_rank=2)
