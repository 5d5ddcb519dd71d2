"""What an embargo is, shared by the server-side permission check and `inlet embargo release`.

An embargo is the DID metadata ``embargo_until``: an ISO 8601 date or time (a date alone means
00:00 UTC, a time without offset is UTC). Until then the DID, and everything attached below it,
may not get a replica on an RSE whose attribute ``public`` is true. A value that cannot be read
counts as an embargo that never ends: a typo must not publish proprietary data.
"""

from __future__ import annotations

import datetime as dt

#: DID metadata key holding the end of the embargo.
EMBARGO_KEY = "embargo_until"
#: RSE attribute marking storage readable by the public.
PUBLIC_ATTR = "public"
#: Account attribute of those who may publish embargoed data early or shorten an embargo.
EMBARGO_ADMIN = "embargo-admin"


def parse_embargo(value: object) -> dt.datetime:
    """The instant an embargo ends (timezone-aware); ValueError names the expected form."""
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, dt.date):
        when = dt.datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        try:
            when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{EMBARGO_KEY}={value!r} is not an ISO 8601 date or time; use e.g. 2027-06-01 or 2027-06-01T12:00:00Z"
            ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def embargo_passed(value: object, now: dt.datetime) -> bool:
    """True only for a readable date that is not in the future."""
    try:
        return parse_embargo(value) <= now
    except ValueError:
        return False
