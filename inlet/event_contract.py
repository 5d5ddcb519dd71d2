"""The contract of inlet's own events on ``[broker] inlet_topic``: envelope, headers, names.

The uploader publishes ``file-registered`` and ``file-quarantined`` and receives
``daq-release``; the listener publishes ``daq-release`` and receives the other two. They
never import each other, so what both must agree on lives here, once.

The envelope is the one hermes uses plus an ``id``
(``{"event_type", "payload", "created_at", "id"}``). The id is the idempotency key: every
send of one event carries the same one, so that a consumer that sees it twice acts once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

#: Sent by the uploader right after it registered a file (Rucio emits nothing then, rucio#8694).
FILE_REGISTERED = "file-registered"
#: The uploader's alarm: a DAQ file it could not take (the listener's alarm handler forwards it).
FILE_QUARANTINED = "file-quarantined"
#: Sent by the listener once every rule of a file is OK: the DAQ-disk copy may go.
DAQ_RELEASE = "daq-release"

#: Fields every event has (hermes' envelope); inlet's own events add ``id``.
ENVELOPE_REQUIRED = ("event_type", "payload", "created_at")
ENVELOPE_ALLOWED = frozenset({*ENVELOPE_REQUIRED, "id"})
#: The header that carries the event's id, so that a selector or an operator sees it unparsed.
EVENT_ID_HEADER = "inlet_event_id"

#: Finds the run number in a DID or file name (group ``run``); ``[listener] run_pattern``'s default.
RUN_NUMBER = r"(?i)run[_-]?0*(?P<run>\d+)"


def envelope(event_type: str, payload: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """An inlet event, created now; without ``event_id``, one of its own (a new UUID)."""
    return {
        "event_type": event_type,
        "payload": payload,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "id": event_id or uuid.uuid4().hex,
    }


def file_event_id(event_type: str, scope: str, name: str) -> str:
    """The id of the one event of this type about a file: the same for every send of it."""
    return f"{event_type}:{scope}:{name}"


def publish_headers(event: dict[str, Any]) -> dict[str, str]:
    """The STOMP headers an inlet event is published with (subscribers select on ``event_type``)."""
    return {"event_type": str(event.get("event_type", "")), EVENT_ID_HEADER: str(event["id"])}
