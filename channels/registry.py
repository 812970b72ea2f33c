"""Adapter names → adapter classes.

Built-in adapters are listed here by module so that none is imported before it is
used (``twilio_sms`` pulls in the Twilio SDK; ``simulate`` must not need it). Third
parties add theirs through the ``outreach.channels`` entry-point group::

    [project.entry-points."outreach.channels"]
    my_adapter = "my_package.my_module:MyAdapter"

A built-in name wins over an entry point of the same name.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError

from channels.base import AdapterSettings, ChannelAdapter
from orchestrator.clock import Clock
from orchestrator.config.models import ChannelConfig
from orchestrator.errors import ConfigError, Problem, UnknownAdapterError

ENTRY_POINT_GROUP = "outreach.channels"

# name → module that defines it; the class is found by its ``name`` (or ``ADAPTER``).
BUILTIN: Mapping[str, str] = {
    "outbox": "channels.outbox.adapter",
    "simulated": "channels.simulated",
    "twilio_sms": "channels.twilio.sms",
    "twilio_voice": "channels.twilio.voice",
    "smtp": "channels.smtp",
    "pdf_batch": "channels.pdf_batch",
}

_registered: dict[str, type] = {}


def register(adapter_cls: type, name: str | None = None) -> type:
    """Register an adapter class explicitly (usable as a class decorator)."""
    _registered[name or adapter_cls.name] = adapter_cls  # type: ignore[attr-defined]
    return adapter_cls


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def adapter_names() -> set[str]:
    """Every adapter name that can be configured: built in, registered, installed."""
    return set(BUILTIN) | set(_registered) | set(_entry_points())


def _from_module(name: str, module_name: str) -> type:
    module = importlib.import_module(module_name)
    found = getattr(module, "ADAPTER", None)
    if isinstance(found, type):
        return found
    for value in vars(module).values():
        if isinstance(value, type) and getattr(value, "name", None) == name:
            if callable(getattr(value, "send", None)):
                return value
    raise ImportError(f"module {module_name} defines no adapter named {name!r}")


def adapter_class(name: str) -> type:
    """The class of adapter ``name``; raises ``UnknownAdapterError`` if there is none."""
    if name in _registered:
        return _registered[name]
    try:
        if name in BUILTIN:
            cls = _from_module(name, BUILTIN[name])
        elif name in (eps := _entry_points()):
            cls = eps[name].load()
        else:
            known = ", ".join(sorted(adapter_names()))
            raise UnknownAdapterError(f"unknown channel adapter {name!r} (known: {known})")
    except ImportError as exc:
        raise UnknownAdapterError(f"channel adapter {name!r} cannot be loaded: {exc}") from exc
    _registered[name] = cls
    return cls


def _settings_model(cls: type) -> type[AdapterSettings]:
    return cast(type[AdapterSettings], getattr(cls, "settings_model", AdapterSettings))


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()))
    if error.get("type") == "extra_forbidden":
        return f"{where}: unknown key"
    return f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg"))


def validate_channel_options(adapter_name: str, options: Mapping[str, Any]) -> list[str]:
    """Messages for every problem in an adapter's options (empty when they are valid)."""
    try:
        cls = adapter_class(adapter_name)
    except UnknownAdapterError as exc:
        return [str(exc.problems[0].message)]
    try:
        _settings_model(cls).model_validate(dict(options))
    except ValidationError as exc:
        return [_describe(cast(dict[str, Any], e)) for e in exc.errors()]
    return []


def create_adapter(
    channel_name: str, cfg: ChannelConfig, *, base_dir: Path, clock: Clock
) -> ChannelAdapter:
    """Build the adapter of one ``channels.yaml`` entry; bad options are a ConfigError."""
    cls = adapter_class(cfg.adapter)
    try:
        settings = _settings_model(cls).model_validate(cfg.options)
    except ValidationError as exc:
        problems = [
            Problem(
                "channels.yaml", None, None, f"{channel_name}: {_describe(cast(dict[str, Any], e))}"
            )
            for e in exc.errors()
        ]
        raise ConfigError(problems) from exc
    factory = getattr(cls, "from_config", None)
    if factory is not None:
        return cast(ChannelAdapter, factory(channel_name, settings, base_dir=base_dir, clock=clock))
    return cast(ChannelAdapter, cls(channel_name, settings, base_dir=base_dir, clock=clock))
