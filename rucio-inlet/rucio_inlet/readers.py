"""Who may read which data: the one decision Rucio's permission check and inlet's readers share.

Rucio has no read actions: confidentiality of data under embargo is held at storage. Data under
embargo lives on private RSEs only (:mod:`rucio_inlet.permission` keeps it off public ones),
and private storage is read through signed URLs, which ``get_signed_url`` gives only to root and
to accounts with the ``collaboration`` attribute. Everyone else reads public RSEs, where a DID
arrives once its embargo has passed (``inlet embargo release``). So, for any DID of any scope:

    an account may read it if it reads private storage, or if the DID's embargo has passed
    (or it never had one); an unreadable embargo never passes.

:func:`reads_private` is what ``perm_get_signed_url`` answers inside Rucio; :func:`may_read` is
what inlet's readers (``inlet web``'s ``/follow`` stream) ask per file, with the account's Rucio
attributes as Rucio itself stores them. Neither re-implements the other. Pure functions: this
module imports nothing from Rucio, so it runs in Rucio's Python 3.9 and in inlet alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from rucio_inlet.embargo import embargo_passed

#: Account attribute of collaboration members (signed URLs for private storage).
COLLABORATION = "collaboration"
ROOT = "root"


def reads_private(account: str, has_attribute: Callable[[str], bool]) -> bool:
    """True if ``account`` may read private storage (get signed URLs): root and collaboration members.

    ``has_attribute(key)`` says whether the account holds the Rucio account attribute ``key``
    (whatever its value, as Rucio's ``has_account_attribute`` answers).
    """
    return account == ROOT or has_attribute(COLLABORATION)


def may_read(account: str, has_attribute: Callable[[str], bool], embargo_until: object, now: dt.datetime) -> bool:
    """True if ``account`` may read a DID whose effective embargo is ``embargo_until`` (None: none)."""
    if reads_private(account, has_attribute):
        return True
    return embargo_until is None or embargo_passed(embargo_until, now)
