"""Every use of a private TensorFlow or Keras API, in one place.

tfglv depends on a few internals that have no public equivalent. Each
function below wraps one of them, says why it is needed and which version
it was checked against, so that an upgrade has one file to read.

Checked against: TensorFlow 2.21.0, Keras 3.15.1, TFP 0.25.0.
"""

import contextlib


# --- TensorFlow Datasets (used by tfglv.data.tfds_source) -------------------


def tfds_default_data_dir() -> str:
  """TFDS's default data_dir ($TFDS_DATA_DIR, else ~/tensorflow_datasets).

  Private: `tfds.core.constants` is outside TFDS's public API (not in
  `tfds.core.__all__`), and no public function returns the default.
  Checked against TFDS 4.9.10 (TF 2.21.0 / Keras 3.15.1).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds.core.constants.DATA_DIR


def tfds_checksum_error() -> type:
  """The exception TFDS raises when an archive's size or sha256 is wrong.

  Private: `NonMatchingChecksumError` lives in the internal module
  `tensorflow_datasets.core.download.download_manager`; `tfds.download`
  does not export it. Checked against TFDS 4.9.10 (TF 2.21.0 / Keras
  3.15.1).
  """
  from tensorflow_datasets.core.download import download_manager  # pylint: disable=g-import-not-at-top
  return download_manager.NonMatchingChecksumError


# --- Graph internals (used by bench/) ---------------------------------------


def graph_functions(graph) -> list:
  """The functions in `graph`'s function library, in insertion order.

  Private: tf.Graph keeps them in `_functions`; the public
  `graph.as_graph_def().library` gives FunctionDefs, not the function
  graphs that TF's op statistics need (bench.flops counts the FLOPs of
  nested function calls with them). Checked against TF 2.21.0 / Keras
  3.15.1.
  """
  return list(graph._functions.values())  # pylint: disable=protected-access


def op_statistic(graph, node_def, statistic: str):
  """TF's registered statistic (e.g. "flops") of one node of `graph`.

  Private: `get_stats_for_node_def` (the lookup behind the v1 profiler's
  FLOP counts) is not exported. Returns an OpStats, whose value is None
  where the op type registers no such function; raises ValueError where
  the registered function cannot compute it (e.g. unknown shapes).
  Checked against TF 2.21.0 / Keras 3.15.1.
  """
  from tensorflow.python.framework import ops  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  return ops.get_stats_for_node_def(graph, node_def, statistic)


def freeze_variables(concrete_function):
  """`concrete_function` with its variables folded into constants.

  Private: `convert_variables_to_constants_v2` has no public export in TF 2;
  the TF Lite converter would otherwise keep READ_VARIABLE ops (used by
  tfglv.export_lib.tflite and bench.latency). Checked against TF 2.21.0 /
  Keras 3.15.1.
  """
  from tensorflow.python.framework import convert_to_constants  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  return convert_to_constants.convert_variables_to_constants_v2(
      concrete_function)


def read_xspace(path: str):
  """The profiler's XSpace proto (host and device planes) in an .xplane.pb.

  Private: the XSpace message class is only in `tensorflow.tsl.profiler.
  protobuf.xplane_pb2`, outside TF's public API (bench.profile_step sums op
  time from it). Checked against TF 2.21.0 / Keras 3.15.1.
  """
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  space = xplane_pb2.XSpace()
  with open(path, "rb") as f:
    space.ParseFromString(f.read())
  return space


# --- Keras layer walk (used by tfglv.model and tests) -----------------------


def sublayers(layer) -> list:
  """Every layer nested in `layer` (not `layer` itself), each once.

  Private: Keras 3 has no public recursive walk over a layer's sub-layers
  (`Model.layers` is one level deep and Layer has none); `_flatten_layers`
  is what Keras itself uses for it. The order (depth first, children as
  tracked) is the one `GLVAE.actnorm_layers` and `conv1x1_layers` have
  always had. Checked against TF 2.21.0 / Keras 3.15.1.
  """
  return list(layer._flatten_layers(include_self=False, recursive=True))  # pylint: disable=protected-access


# --- Function call options (used by tfglv.compiled) --------------------------


_REWRITES_OFF_OPTIONS = {}


def untracked_dict(owner, name: str) -> dict:
  """`owner.<name>`, a dict created on first use, stored past Keras's and
  TF's attribute tracking: not a weight, not part of checkpoints or exports
  (traced functions cached on a layer or model)."""
  value = owner.__dict__.get(name)
  if value is None:
    value = {}
    object.__setattr__(owner, name, value)
  return value


@contextlib.contextmanager
def graph_rewrites_off(*rewrites: str):
  """Functions first run inside are optimised without Grappler `rewrites`.

  `rewrites` are fields of TF's RewriterConfig ("remapping",
  "arithmetic_optimization", ...), or "meta_optimizer" for Grappler as a
  whole (`disable_meta_optimizer`). TF optimises each function's graph the
  first time it runs, with the config of the thread's function call
  options; this sets them, for this thread only, to the current config with
  those rewrites off, and restores them after.

  Private: `context().function_call_options` and `FunctionCallOptions` are
  how TF itself passes the config to a call; the public
  `tf.config.optimizer.set_experimental_options` changes it for every
  thread and every later function (the trainer's steps too). Checked
  against TF 2.21.0 / Keras 3.15.1.
  """
  from tensorflow.core.protobuf import config_pb2  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  from tensorflow.core.protobuf import rewriter_config_pb2  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  from tensorflow.python.eager import context  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  runtime = context.context()
  current = runtime.function_call_options
  key = (current.config_proto_serialized, current.executor_type, rewrites)
  if key not in _REWRITES_OFF_OPTIONS:
    config = config_pb2.ConfigProto()
    config.ParseFromString(current.config_proto_serialized or b"")
    options = config.graph_options.rewrite_options
    for rewrite in rewrites:
      if rewrite == "meta_optimizer":
        options.disable_meta_optimizer = True
      else:
        setattr(options, rewrite, rewriter_config_pb2.RewriterConfig.OFF)
    _REWRITES_OFF_OPTIONS[key] = context.FunctionCallOptions(
        executor_type=current.executor_type, config_proto=config)
  runtime.function_call_options = _REWRITES_OFF_OPTIONS[key]
  try:
    yield
  finally:
    runtime.function_call_options = current


# --- Checkpoints (used by tfglv.rundir.checkpoints) -------------------------


def checkpoint_object_graph(checkpoint: str):
  """The TrackableObjectGraph proto saved in `checkpoint` (a path prefix).

  Private: the graph is stored under the internal key
  "_CHECKPOINTABLE_OBJECT_GRAPH", and its message class lives only in
  `tensorflow.core.protobuf.trackable_object_graph_pb2`. tfglv walks it to
  count the variables a checkpoint holds under "model", which
  `tf.train.Checkpoint.restore` does not report. Checked against TF 2.21.0 /
  Keras 3.15.1.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.core.protobuf import trackable_object_graph_pb2  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  reader = tf.train.load_checkpoint(checkpoint)
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
  return graph


# --- Multi-worker start-up (used by tfglv.training.distribute) --------------


def configure_coordination_service(leader: str, num_tasks: dict,
                                   register_timeout_seconds: float) -> bool:
  """Configures TF's coordination service with a start-up deadline.

  `leader` is a task name ("/job:chief/replica:0/task:0"), `num_tasks` maps
  each job to its task count. Returns False, changing nothing, when the
  process configured a service already (theirs wins).

  Private: `tensorflow.python.eager.context` and the `CoordinatedJob` message
  of `tensorflow.compiler.xla.tsl.protobuf.coordination_config_pb2` are what
  MultiWorkerMirroredStrategy itself uses. It configures the same service
  unless one exists, but without a deadline, so a missing worker would be
  waited for forever; configuring it first is the only way to bound that
  wait. Checked against TF 2.21.0 / Keras 3.15.1.
  """
  from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  from tensorflow.python.eager import context  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  runtime = context.context()
  if runtime.coordination_service is not None:
    return False
  runtime.configure_coordination_service(
      service_type="standalone", service_leader=leader,
      coordinated_jobs=[
          coordination_config_pb2.CoordinatedJob(name=job, num_tasks=count)
          for job, count in num_tasks.items()],
      cluster_register_timeout_in_ms=int(register_timeout_seconds * 1000))
  # Without the barrier the leader registers itself and then waits for the
  # others with no deadline; with it, every task fails after the timeout.
  runtime.coordination_service.cluster_register_with_barrier = True
  return True


# --- Keras optimizer internals (used by tfglv.training.optimizer) -----------


def skip_keras_gradient_all_reduce(optimizer_class):
  """Class decorator: the optimizer applies gradients as given.

  Private: Keras's TensorFlow optimizer sums gradients across replicas in
  `_all_reduce_sum_gradients` inside `apply`; tfglv's train step has summed
  them already (it measures, clips and checks them first), and no public
  option turns the second sum off. The class then says so:
  `sums_replica_gradients = False`. Checked against TF 2.21.0 / Keras
  3.15.1.
  """

  def _all_reduce_sum_gradients(self, grads_and_vars):
    del self
    return list(grads_and_vars)

  setattr(optimizer_class, "_all_reduce_sum_gradients",
          _all_reduce_sum_gradients)
  # Said publicly, for callers that hand it summed gradients (keras_fit).
  optimizer_class.sums_replica_gradients = False
  return optimizer_class


def skip_keras_weight_decay(optimizer_class):
  """Class decorator: Keras's separate weight-decay pass does nothing.

  Private: Keras applies AdamW's decoupled decay in `_apply_weight_decay`,
  one extra op per variable before the update; an optimizer that folds the
  decay into its `update_step` must switch that pass off, and there is no
  public hook. Checked against TF 2.21.0 / Keras 3.15.1.
  """

  def _apply_weight_decay(self, variables):
    del self, variables  # Folded into update_step.

  setattr(optimizer_class, "_apply_weight_decay", _apply_weight_decay)
  return optimizer_class


def adam_slots(optimizer, variable):
  """(momentum, velocity): Keras Adam's slot variables of `variable`.

  Private: `_get_variable_index`, `_momentums` and `_velocities` are how
  `keras.optimizers.Adam.update_step` finds them; Keras has no public
  lookup, and a fused update needs both. Checked against TF 2.21.0 / Keras
  3.15.1.
  """
  # pylint: disable=protected-access
  index = optimizer._get_variable_index(variable)
  return optimizer._momentums[index], optimizer._velocities[index]


# --- TF Lite flatbuffers (used by tfglv.export_lib.tflite) ------------------


def tflite_operator_names(tflite_model: bytes) -> list:
  """The name of every operator code of a TF Lite model, in file order;
  custom ops as "CUSTOM:<name>".

  Private: `tensorflow.lite.tools.flatbuffer_utils` is outside TF's public
  API, and neither `tf.lite` nor `ai_edge_litert` lists a model's operators
  (the export checks them: builtin ops only). Checked against TF 2.21.0 /
  Keras 3.15.1.
  """
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_model))
  return [("CUSTOM:" + code.customCode.decode("ascii")) if code.customCode
          else flatbuffer_utils.opcode_to_name(model, index)
          for index, code in enumerate(model.operatorCodes)]


def tflite_resource_variable_count(tflite_model: bytes) -> int:
  """How many resource variables a TF Lite model keeps (0 when frozen).

  Private: `count_resource_variables` of the internal
  `tensorflow.lite.tools.flatbuffer_utils`; no public API counts them.
  Checked against TF 2.21.0 / Keras 3.15.1.
  """
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  return flatbuffer_utils.count_resource_variables(bytearray(tflite_model))
