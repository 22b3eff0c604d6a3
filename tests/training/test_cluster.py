"""Tests of tfglv.training.cluster: TF_CONFIG is checked before TF reads it.

Multi-worker runs themselves are in tests/integration/test_multi_worker.py.
"""

import json
import re

import pytest

from tfglv.training import cluster as cluster_lib


@pytest.mark.parametrize("value, message", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"task": {"type": "worker", "index": 0}}', "has no 'cluster'"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "has no 'task'"),
    ('{"cluster": {"ps": ["127.0.0.1:1"]}, "task": {"type": "ps"}}',
     "cluster has job 'ps'"),
    ('{"cluster": {"worker": "127.0.0.1:1"}, "task": {"type": "worker"}}',
     "must be a non-empty list"),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker"}}',
     "not 'host:port'"),
    ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker"}}',
     "lists address 'a:1' twice"),
    ('{"cluster": {"chief": ["a:1", "b:1"]}, "task": {"type": "chief"}}',
     "2 chiefs"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief"}}',
     "task type 'chief' is not a job"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker"}}',
     "task has no 'index'"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", '
     '"index": "0"}}', "task index must be an integer"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", '
     '"index": true}}', "task index must be an integer"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", '
     '"index": 2}}', "index 2 is out of range: job 'worker' has 2"),
])
def test_malformed_tf_config(value, message):
  with pytest.raises(ValueError, match=re.escape(message)) as error:
    cluster_lib.parse_tf_config(value)
  assert "Expected JSON like" in str(error.value)


def test_well_formed_tf_config():
  cluster = {"chief": ["a:1"], "worker": ["b:1", "[::1]:2"]}
  text = json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                  "index": 1}})
  assert cluster_lib.parse_tf_config(text) == (cluster, "worker", 1)
