"""The garbage collector pauses while graphs are traced, and only then."""

import contextlib
import gc

import numpy as np
import tensorflow as tf

import tfglv
from tfglv import compiled
from tfglv import gc_pause
from training import test_steps


def test_paused_restores_the_collector_and_nests():
  assert gc.isenabled()
  with gc_pause.paused():
    assert not gc.isenabled()
    with gc_pause.paused():
      assert not gc.isenabled()
    assert not gc.isenabled()  # The inner exit keeps the outer pause.
  assert gc.isenabled()
  gc.disable()
  try:
    with gc_pause.paused():
      pass
    assert not gc.isenabled()  # Left as the caller set it.
  finally:
    gc.enable()


def test_paused_restores_the_collector_after_an_error():
  try:
    with gc_pause.paused():
      raise KeyError("x")
  except KeyError:
    pass
  assert gc.isenabled()


@contextlib.contextmanager
def _collections():
  """Lists the automatic collections that start while a graph is traced,
  inside; with a low threshold, so that any burst of allocations triggers
  some."""
  starts = []

  def callback(phase, info):
    if phase == "start" and tf.inside_function():
      starts.append(info["generation"])

  threshold = gc.get_threshold()
  gc.set_threshold(50)
  gc.callbacks.append(callback)
  try:
    yield starts
  finally:
    gc.callbacks.remove(callback)
    gc.set_threshold(*threshold)


def test_train_step_traces_without_collecting():
  batches = [test_steps.images([1, 2])] * 3
  train_step, iterator, model, _, _, _ = test_steps.make_step(batches)
  with _collections() as first:
    train_step.train_step(iterator)  # Traces, then runs.
  with _collections() as control:  # The same tracing, collector running.
    tf.function(train_step._gradients, autograph=False).get_concrete_function(  # pylint: disable=protected-access
        iterator)
  assert not first
  assert control, "tracing allocated too little to test the pause"
  assert gc.isenabled()
  assert np.all(np.isfinite(model.w.numpy()))


def test_compiled_first_trace_does_not_collect():
  model = tfglv.build_model(tfglv.configs.get("tiny"))
  images = np.zeros([2, *model.config.image_shape], np.uint8)
  model.encode(images)  # The first call runs op by op.
  with _collections() as first:
    model.encode(images)  # Traces, then runs the graph.
  assert compiled.tracing_count(model, "encode") == 1
  assert not first
  assert gc.isenabled()
