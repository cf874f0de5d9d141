"""``--set SECTION.FIELD=VALUE``: changes to a run's :class:`~tpsmm.core.model.config.Config` from the command line.

Used by ``tpsmm train`` and ``tpsmm train-avd``. The value is read as YAML; a number field takes numbers only.
"""
from __future__ import annotations

import dataclasses
import json

from ..core.model.config import Config, ConfigError

__all__ = ["SECTIONS", "apply_overrides"]

SECTIONS = ("model", "train", "dataset", "train_avd")
"""The config sections a ``--set`` entry may change."""


def apply_overrides(config, entries: list[str]):
    """Apply ``section.field=value`` entries (value parsed as YAML) to a :class:`~tpsmm.core.model.config.Config`."""
    import yaml

    plain = dataclasses.asdict(config)
    for entry in entries:
        key, sep, raw = entry.partition("=")
        section, _, name = key.strip().partition(".")
        if not sep or section not in SECTIONS or not name:
            raise ConfigError(f"--set {entry!r}: expected SECTION.FIELD=VALUE with SECTION one of {', '.join(SECTIONS)}")
        if name not in plain[section]:
            raise ConfigError(f"--set {entry!r}: {section} has no field {name!r} "
                              f"(fields: {', '.join(sorted(plain[section]))})")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"--set {entry!r}: cannot parse the value") from None
        current = plain[section][name]
        if isinstance(current, float) and isinstance(value, str):
            try:
                value = float(value)  # YAML 1.1 reads 5e-5 (no dot) as a string
            except ValueError:
                pass
        number = (int, float)
        if isinstance(current, number) and not isinstance(current, bool) and (
                not isinstance(value, number) or isinstance(value, bool)):
            raise ConfigError(f"--set {entry!r}: {section}.{name} must be a number, got {value!r}")
        plain[section][name] = value
    try:
        return Config.from_json(json.dumps(plain))
    except TypeError as exc:
        raise ConfigError(f"--set: {exc}") from None
