"""Arguments and results travel as JSON, never pickle: a store's contents are data, not code."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from conveyor.errors import PayloadTooLarge, SerializationError

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
dumps = _encoder.encode


def _argument_names(
    fn: Callable[..., Any] | None, args: Sequence[Any], kwargs: Mapping[str, Any], *, skip: int = 0
) -> list[tuple[str, Any]]:
    """(name, value) for each argument, named after the function's parameters where possible."""
    named: list[tuple[str, Any]] = []
    params: list[str] = []
    if fn is not None:
        try:
            params = [p.name for p in inspect.signature(fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][skip:]
        except (TypeError, ValueError):
            params = []
    for index, value in enumerate(args):
        label = f"'{params[index]}' (position {index})" if index < len(params) else f"at position {index}"
        named.append((label, value))
    named.extend((f"'{key}'", value) for key, value in kwargs.items())
    return named


def _why_not_json(value: Any) -> str | None:
    try:
        dumps(value)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


def encode_payload(task_name: str, fn: Callable[..., Any] | None, args: Sequence[Any],
                   kwargs: Mapping[str, Any], max_bytes: int, *, bound: bool = False) -> str:
    """The JSON payload of one call; `bound` says `fn` takes the task as its first parameter."""
    try:
        payload = dumps({"args": list(args), "kwargs": dict(kwargs)})
    except (TypeError, ValueError):
        for label, value in _argument_names(fn, args, kwargs, skip=1 if bound else 0):
            reason = _why_not_json(value)
            if reason is not None:
                raise SerializationError(
                    f"argument {label} of task {task_name!r} cannot be sent as JSON ({reason}); "
                    f"pass plain data (str, int, float, bool, None, list, dict), e.g. an id instead "
                    f"of an object, or an ISO string instead of a datetime") from None
        raise
    size = len(payload.encode("utf-8"))
    if size > max_bytes:
        raise PayloadTooLarge(
            f"the arguments of task {task_name!r} are {size:,} bytes of JSON, over the {max_bytes:,}-byte "
            f"limit; store large data elsewhere (a file, a blob store) and pass its key, or raise "
            f"Conveyor(max_payload=...)")
    return payload


def decode_payload(payload: str) -> tuple[list[Any], dict[str, Any]]:
    """Raises SerializationError when the stored payload is not what conveyor writes."""
    if not payload.isascii():
        try:
            payload.encode()  # the engines read bytes that are not UTF-8 as lone surrogates
        except UnicodeEncodeError:
            raise SerializationError("the stored arguments are not valid UTF-8; the job was written by "
                                     "something other than conveyor") from None
    try:
        data = json.loads(payload)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"the stored arguments are not valid JSON ({exc}); "
                                 "the job was written by something other than conveyor") from None
    # Unknown keys fail too: a foreign envelope (a Celery message, say) must not run with no arguments.
    if not isinstance(data, dict) or not data or not data.keys() <= {"args", "kwargs"} \
            or not isinstance(data.get("args", []), list) or not isinstance(data.get("kwargs", {}), dict):
        raise SerializationError('the stored arguments are not {"args": [...], "kwargs": {...}}; '
                                 "the job was written by something other than conveyor")
    return data.get("args", []), data.get("kwargs", {})


def encode_result(task_name: str, value: Any) -> str:
    if value is None:
        return "null"  # most tasks return nothing: skip the encoder
    try:
        return dumps(value)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"task {task_name!r} returned a value that cannot be stored as JSON "
                                 f"({exc}); return plain data") from None


def decode_result(text: str | None) -> Any:
    return None if text is None else json.loads(text)
