"""TF_CONFIG, the cluster of a multi-worker run, checked before TF reads it.

    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                "task": {"type": "worker", "index": 0}}'

Every worker runs the same command with its own task. TensorFlow itself
answers a malformed value with a KeyError, or waits forever;
`parse_tf_config` names the problem and the expected form instead.
"""

import json
from typing import Dict, List, Tuple

# Jobs a TF_CONFIG cluster may have for MultiWorkerMirroredStrategy training
# (an "evaluator" side-car or "ps" parameter servers are not supported).
MULTI_WORKER_JOBS = ("chief", "worker")
_TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
                      '"task": {"type": "worker", "index": 0}}')


def parse_tf_config(text: str) -> Tuple[Dict[str, List[str]], str, int]:
  """Checks a TF_CONFIG value; returns (cluster, task_type, task_index).

  `cluster` maps each job of MULTI_WORKER_JOBS ("chief": one address,
  "worker": one or more) to "host:port" addresses; the task names this
  process's entry. Raises ValueError naming the problem and the expected
  form, instead of the KeyError or endless wait TensorFlow would give.
  """

  def fail(problem):
    raise ValueError(
        f"TF_CONFIG {problem}. Expected JSON like {_TF_CONFIG_EXAMPLE}: jobs "
        f"{' and '.join(map(repr, MULTI_WORKER_JOBS))} (at most one chief) "
        f"listing 'host:port' addresses, and this process's task (type: one "
        f"of the jobs, index: its position in that job's list).")

  try:
    value = json.loads(text)
  except json.JSONDecodeError as e:
    fail(f"is not valid JSON ({e})")
  if not isinstance(value, dict):
    fail(f"must be a JSON object; got {type(value).__name__}")
  cluster, task = value.get("cluster"), value.get("task")
  if not isinstance(cluster, dict) or not cluster:
    fail("has no 'cluster' (an object of job name -> list of addresses)")
  addresses_seen = set()
  for job, addresses in cluster.items():
    if job not in MULTI_WORKER_JOBS:
      fail(f"cluster has job {job!r}; MultiWorkerMirroredStrategy training "
           f"allows {', '.join(map(repr, MULTI_WORKER_JOBS))}")
    if (not isinstance(addresses, list) or not addresses or
        not all(isinstance(a, str) for a in addresses)):
      fail(f"cluster job {job!r} must be a non-empty list of 'host:port' "
           f"strings; got {addresses!r}")
    for address in addresses:
      host, _, port = address.rpartition(":")
      if not host or not port.isdigit() or not 0 < int(port) < 65536:
        fail(f"cluster job {job!r} has address {address!r}, not 'host:port' "
             f"with a port in 1-65535")
      if address in addresses_seen:
        fail(f"cluster lists address {address!r} twice")
      addresses_seen.add(address)
  if len(cluster.get("chief", [])) > 1:
    fail(f"cluster has {len(cluster['chief'])} chiefs; at most one")
  if not isinstance(task, dict):
    fail("has no 'task' (an object with 'type' and 'index')")
  task_type, task_index = task.get("type"), task.get("index")
  if task_type not in cluster:
    fail(f"task type {task_type!r} is not a job of its cluster "
         f"({', '.join(map(repr, cluster))})")
  if "index" not in task:
    fail("task has no 'index' (this process's position in its job's list)")
  if isinstance(task_index, bool) or not isinstance(task_index, int):
    fail(f"task index must be an integer; got {task_index!r}")
  count = len(cluster[task_type])
  if not 0 <= task_index < count:
    fail(f"task index {task_index} is out of range: job {task_type!r} has "
         f"{count} address(es), indices 0-{count - 1}")
  return cluster, task_type, task_index
