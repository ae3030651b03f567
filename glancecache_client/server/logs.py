"""What the reference server logs and how: named events with fields, in a text or a JSON-lines format.

Owns: ``event`` (log one named event of one node with its fields), the two formatters and ``configure``
(the ``--log-format`` / ``--log-level`` set-up on stderr).

Every record carries ``node`` (the node's self-reference URL; None for records that belong to no node) and
``event`` (a stable name such as ``access``, ``fill_finished``, ``prune``; None for plain messages). The
JSON format writes one object per line with the keys ``time`` (UTC, ISO 8601), ``level``, ``logger``,
``node``, ``event`` and ``message`` always present, then the event's own fields (``image_id``, ``bytes``,
``seconds``, ``reason``, ...), then ``exception`` when there is a traceback. The text format is one line
``<time> <LEVEL> <logger> [<node>] <message>`` (a traceback follows on its own lines).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

__all__ = ["ACCESS_LOGGER", "FORMATS", "JsonFormatter", "TextFormatter", "configure", "event", "notice"]

ACCESS_LOGGER = "glancecache_client.server.access"
FORMATS = ("text", "json")
_BASE_KEYS = ("time", "level", "logger", "node", "event", "message")


def event(
    logger: logging.Logger,
    level: int,
    name: str,
    message: str,
    *args: object,
    node: str | None,
    exc_info: bool = False,
    wrappers: int = 0,
    **fields: object,
) -> None:
    """Log ``message % args`` as event ``name`` of ``node``; ``fields`` go into the JSON object.

    ``wrappers``: how many helper functions stand between the code that logs and this call (the record
    names that code's file and line).
    """
    if logger.isEnabledFor(level):
        extra = {"node": node, "event": name, "fields": fields}
        logger.log(level, message, *args, exc_info=exc_info, extra=extra, stacklevel=2 + wrappers)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(node)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "node", None) is None:
            record.node = "-"  # records of other libraries (waitress, SQLAlchemy) name no node
        return super().format(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, tz=timezone.utc)
        payload: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "node": getattr(record, "node", None),
            "event": getattr(record, "event", None),
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update((key, value) for key, value in fields.items() if key not in _BASE_KEYS)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure(level: str, log_format: str) -> None:
    """Send every log record at ``level`` or above to stderr in ``log_format`` (``text`` or ``json``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level))


def notice(text: str, log_format: str, source: str) -> str:
    """A start-up notice for stderr (printed whatever the level), as one JSON object in the json format."""
    if log_format != "json":
        return text
    record = logging.LogRecord(source, logging.INFO, "", 0, text, None, None)
    record.event = "notice"
    return JsonFormatter().format(record)
