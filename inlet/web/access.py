"""Who is looking, and what they may see and do.

Identity is a Rucio account, checked by Rucio itself (a userpass login or a token). Roles come
from Rucio account attributes, read by the web server with its own account, so the person
cannot claim one:

- **data manager**: root, or an account with the ``[web] data_manager_attribute`` attribute
  (``data-manager``, the attribute inlet's Rucio policy already gives raw-data rights to).
  Sees everything and may act: replay a DLQ entry, boost a rule.
- **collaboration**: an account with ``[web] collaboration_attribute`` (``collaboration``, the
  attribute inlet's policy gives signed URLs to). Sees everything, acts on nothing.
- **public**: any other valid account. Sees runs whose embargo has ended (or never had one)
  and counts; never a name from under an embargo, so never a DLQ body, an alarm text, a
  quarantined file or a rehearsal report (those carry DID names).

The embargo is the run catalogue's ``embargo_until`` compared as inlet's Rucio policy compares
it (:func:`rucio_inlet.embargo.embargo_passed`: an unreadable value never passes).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

from rucio_inlet.embargo import embargo_passed

from inlet.config import WebSettings


class Role(enum.StrEnum):
    PUBLIC = "public"
    COLLABORATION = "collaboration"
    DATA_MANAGER = "data-manager"


@dataclass(frozen=True)
class Viewer:
    account: str
    role: Role

    @property
    def sees_embargoed(self) -> bool:
        return self.role in (Role.COLLABORATION, Role.DATA_MANAGER)

    @property
    def may_act(self) -> bool:
        return self.role is Role.DATA_MANAGER

    def public_at(self) -> dt.datetime | None:
        """The instant embargoes are judged at for this viewer; None: embargoes do not hide anything."""
        return None if self.sees_embargoed else dt.datetime.now(dt.UTC)

    def may_see_run(self, embargo_until: Any) -> bool:
        return self.sees_embargoed or embargo_until is None or embargo_passed(embargo_until, dt.datetime.now(dt.UTC))


def role_of(account: str, attributes: dict[str, str], settings: WebSettings) -> Role:
    """The role an account's Rucio attributes give it (a value of false/0/no does not count)."""

    def has(key: str) -> bool:
        value = attributes.get(key)
        return value is not None and value.strip().lower() not in ("false", "0", "no", "")

    if account == "root" or has(settings.data_manager_attribute):
        return Role.DATA_MANAGER
    if has(settings.collaboration_attribute):
        return Role.COLLABORATION
    return Role.PUBLIC
