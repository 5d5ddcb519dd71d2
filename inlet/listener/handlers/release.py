"""DAQ-disk release: once every rule of a file is OK, tell the uploader its local copy may go.

The signal is an inlet event (``daq-release``) on ``[broker] inlet_topic``, sent through the
outbox with the idempotency key ``daq-release:<scope>:<name>`` as the event id: the uploader
subscribes to that topic and never imports the listener, and a repeated signal carries the
same id, so the uploader deletes nothing twice.
"""

from __future__ import annotations

from typing import Any

from inlet.config import ListenerSettings
from inlet.event_contract import DAQ_RELEASE, envelope, file_event_id
from inlet.listener.events import Event
from inlet.listener.handlers.base import HandlerContext


class ReleaseHandler:
    name = DAQ_RELEASE

    def __init__(self, settings: ListenerSettings, options: dict[str, Any]) -> None:
        self.min_rules = int(options.get("min_rules", 1))

    def handle(self, event: Event, ctx: HandlerContext) -> None:
        scope, name = event.require("scope", "name")
        # A transfer-done names one file; a rule or dataset lock may cover a whole dataset.
        files = [(scope, name)] if event.event_type == "transfer-done" else ctx.rucio.dataset_files(scope, name)
        for f_scope, f_name in files:
            states = ctx.rucio.file_rule_states(f_scope, f_name)
            if len(states) < self.min_rules or any(s != "OK" for s in states.values()):
                continue
            key = file_event_id(DAQ_RELEASE, f_scope, f_name)
            release = envelope(DAQ_RELEASE, {"scope": f_scope, "name": f_name, "rules": sorted(states)}, key)
            if ctx.enqueue("inlet-event", release, key):
                ctx.log.info("%s:%s: all %d rules OK, DAQ-disk copy may be released", f_scope, f_name, len(states))
