"""Reading and writing a `Config`: overrides, dicts, JSON, old layouts.

Every way of changing a config goes through `override`: the command
line's `--set field=value`, its shortcut flags and the Python `get(name,
**overrides)` alike. Field names are dotted paths into the tree
(`train.batch_size`, `model.decoder.num_steps`). The names of tfglv 0.2,
whose config had no model subtree, still work as aliases:

    model=glow                 -> model.variant=glow
    image_size, channels, n_bits, latent_dim -> model.<same>
    encoder.*, prior.*, decoder.*            -> model.encoder.*, ...

`from_dict` reads the 0.2 layout of `config.json` too, so runs written by
0.2 resume, evaluate and export unchanged.
"""

import dataclasses
import json
import typing
from typing import Any, Dict, Iterable, Mapping, Tuple, Union

from tfglv.configs import checks
from tfglv.configs import schema

_MODEL_SCALARS = ("image_size", "channels", "n_bits", "latent_dim")
_MODEL_SUBTREES = ("encoder", "prior", "decoder")


def canonical_key(key: str) -> str:
  """The dotted field name an override key means (0.2 aliases resolved)."""
  key = key.strip()
  head = key.split(".", 1)[0]
  if key == "model":
    return "model.variant"
  if key in _MODEL_SCALARS or head in _MODEL_SUBTREES:
    return f"model.{key}"
  return key


def _parse_value(text: str, current: Any, key: str):
  """Parses a command-line string into the type of the current value."""
  if not isinstance(text, str):
    return text
  try:
    if isinstance(current, bool):
      lowered = text.strip().lower()
      if lowered in ("1", "true", "yes"):
        return True
      if lowered in ("0", "false", "no"):
        return False
      raise ValueError("expected true or false")
    if isinstance(current, int):
      return int(text)
    if isinstance(current, float):
      return float(text)
    if isinstance(current, list):
      return json.loads(text)
  except (ValueError, json.JSONDecodeError) as e:
    raise ValueError(
        f"Cannot parse {text!r} for config field {key!r} "
        f"(expected {type(current).__name__}, e.g. {current!r}): {e}") from None
  return text


Overrides = Union[Mapping[str, Any], Iterable[Tuple[str, Any]]]


def override(config: schema.Config, values: Overrides) -> schema.Config:
  """Returns a copy of `config` with dotted fields replaced, in order.

  `values` is a mapping or a sequence of (field, value) pairs; later pairs
  win. Values may be strings (parsed to the field's type) or typed values.
  Raises ValueError naming the unknown field and the allowed ones.
  """
  config = from_dict(to_dict(config))
  allowed = schema.field_names(config)
  items = values.items() if isinstance(values, Mapping) else values
  for raw_key, value in items:
    key = canonical_key(raw_key)
    parts = key.split(".")
    node = config
    for part in parts[:-1]:
      node = getattr(node, part, None)
      if not dataclasses.is_dataclass(node):
        break
    if (not dataclasses.is_dataclass(node) or
        parts[-1] not in {f.name for f in dataclasses.fields(node)} or
        dataclasses.is_dataclass(getattr(node, parts[-1]))):
      raise ValueError(f"Unknown config field {raw_key!r}; allowed: "
                       f"{', '.join(allowed)}.")
    current = getattr(node, parts[-1])
    # Parse errors name the field as the user spelled it.
    setattr(node, parts[-1], _parse_value(value, current, raw_key))
  checks.check_types(config)
  return config


def to_dict(config) -> Dict[str, Any]:
  return dataclasses.asdict(config)


def migrate(values: Dict[str, Any]) -> Dict[str, Any]:
  """A config dict of tfglv 0.2 (flat model fields) in today's layout."""
  if not isinstance(values.get("model", {}), str):
    return values
  values = dict(values)
  model = {"variant": values.pop("model")}
  for name in _MODEL_SCALARS + _MODEL_SUBTREES:
    if name in values:
      model[name] = values.pop(name)
  values["model"] = model
  return values


def _build(cls, data, prefix=""):
  if not isinstance(data, Mapping):
    raise ValueError(f"config section {prefix.rstrip('.') or 'root'} must be "
                     f"an object of fields; got {data!r}.")
  known = {f.name: f for f in dataclasses.fields(cls)}
  unknown = set(data) - set(known)
  if unknown:
    raise ValueError(f"Unknown {cls.__name__} fields {sorted(unknown)}; "
                     f"allowed: {sorted(known)}.")
  hints = typing.get_type_hints(cls)
  kwargs = {}
  for name, value in data.items():
    if dataclasses.is_dataclass(hints[name]):
      kwargs[name] = _build(hints[name], value, f"{prefix}{name}.")
    else:
      kwargs[name] = value
  return cls(**kwargs)


def from_dict(values: Dict[str, Any]) -> schema.Config:
  """Inverse of `to_dict` (also reads 0.2's layout); unknown keys and values
  of the wrong type raise."""
  if not isinstance(values, Mapping):
    raise ValueError(f"a config must be an object of fields; got {values!r}.")
  config = _build(schema.Config, migrate(values))
  checks.check_types(config)
  return config


def model_from_dict(values: Dict[str, Any]) -> schema.ModelConfig:
  """Inverse of `to_dict(model_config)`; unknown keys and values of the
  wrong type raise."""
  model = _build(schema.ModelConfig, values, "model.")
  checks.check_types(model, "model.")
  return model


def to_json(config: schema.Config, **extra) -> str:
  """The config as JSON; `extra` adds top-level keys beside its fields."""
  return json.dumps({**to_dict(config), **extra}, indent=2, sort_keys=True)


def from_json(text: str) -> schema.Config:
  return from_dict(json.loads(text))


def save(config: schema.Config, path: str, **extra):
  """Writes `config` as JSON (with `extra` top-level keys); atomically, so a
  killed run never leaves half."""
  import tensorflow as tf  # Local import: configs stay importable without TF.
  temporary = f"{path}.tmp"
  with tf.io.gfile.GFile(temporary, "w") as f:
    f.write(to_json(config, **extra))
  tf.io.gfile.rename(temporary, path, overwrite=True)


def load(path: str) -> schema.Config:
  import tensorflow as tf
  with tf.io.gfile.GFile(path, "r") as f:
    return from_json(f.read())
