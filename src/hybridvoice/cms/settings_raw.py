"""Settings back to the raw mapping that :func:`~.settings.parse_settings` reads: the one way
to edit validated settings as data and read them again.

A plain ``model_dump(exclude_none=True)`` loses a listener switched off: ``None`` means "off"
where the default is on (``[MediationServer] TLSPort = 5067``), and a key left out comes back
at its default on the next read (a test that meant TLS off found 5067 taken). Here a ``None``
whose default is not ``None`` is kept; every other ``None`` (unset: its default) is left out,
as in a settings file. (A file says "off" as ``false``: :func:`.template.render_settings`.)
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["settings_raw"]


def settings_raw(model: BaseModel) -> dict[str, Any]:
    """``model`` (the settings or one of their sections) as raw keys and JSON values that
    parse back to an equal model; a listener switched off stays ``None``."""
    dumped = model.model_dump(by_alias=True, mode="json")
    return _raw(model, dumped)


def _raw(model: BaseModel, dumped: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        key = field.serialization_alias or field.alias or name
        if key not in dumped:
            continue
        value = getattr(model, name)
        if value is None:
            if field.default is not None:  # off where the default is on (or required)
                out[key] = None
            continue
        out[key] = _value(value, dumped[key])
    return out


def _value(value: object, dumped: Any) -> Any:
    if isinstance(value, BaseModel):
        return _raw(value, dumped)
    if isinstance(value, (list, tuple)) and any(isinstance(v, BaseModel) for v in value):
        return [_value(v, d) for v, d in zip(value, dumped, strict=True)]
    if isinstance(value, dict) and any(isinstance(v, BaseModel) for v in value.values()):
        return {k: _value(v, dumped[k]) for k, v in value.items()}
    return dumped
