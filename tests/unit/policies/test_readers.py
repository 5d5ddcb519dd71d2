"""rucio_inlet.readers: the read decision shared by perm_get_signed_url and inlet's /follow stream."""

from __future__ import annotations

import datetime as dt
import inspect
from pathlib import Path

from rucio_inlet import readers

NOW = dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC)
NONE: frozenset[str] = frozenset()


def test_root_and_collaboration_read_private_storage_others_do_not() -> None:
    assert readers.reads_private("root", NONE.__contains__)
    assert readers.reads_private("alice", frozenset({"collaboration"}).__contains__)
    assert not readers.reads_private("bob", NONE.__contains__)
    # Rucio's has_account_attribute: holding the key counts, whatever its value; data managers
    # get no signed URLs from the policy unless they are also collaboration members.
    assert not readers.reads_private("dm", frozenset({"data-manager"}).__contains__)


def test_outsiders_read_only_what_is_past_its_embargo() -> None:
    out = NONE.__contains__
    assert readers.may_read("bob", out, None, NOW)
    assert readers.may_read("bob", out, NOW - dt.timedelta(seconds=1), NOW)
    assert readers.may_read("bob", out, NOW, NOW)
    assert not readers.may_read("bob", out, NOW + dt.timedelta(seconds=1), NOW)
    assert not readers.may_read("bob", out, "2026-13-45", NOW)  # unreadable: never passes
    assert readers.may_read("alice", frozenset({"collaboration"}).__contains__, NOW + dt.timedelta(days=9), NOW)


def test_the_policy_asks_readers_for_signed_urls() -> None:
    """perm_get_signed_url decides through readers.reads_private, not a second copy of the rule."""
    source = (inspect.getfile(readers)).replace("readers.py", "permission.py")
    text = Path(source).read_text()
    body = text[text.index("def perm_get_signed_url") :].split("\ndef ", 1)[0]
    assert "readers.reads_private(" in body
