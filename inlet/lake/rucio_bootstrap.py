"""First-start bootstrap of a Rucio catalogue: schema, base VO, root account with its identity.

Run as ``python -m inlet.lake.rucio_bootstrap`` with ``RUCIO_CONFIG`` set. Every step checks
what is already there, so a bootstrap interrupted halfway is finished by the next run.
"""

from __future__ import annotations

import sys


def main() -> int:
    from rucio.common.types import InternalAccount
    from rucio.core.account import account_exists
    from rucio.core.vo import vo_exists
    from rucio.db.sqla.session import get_engine, get_session
    from rucio.db.sqla.util import build_database, create_base_vo, create_root_account
    from sqlalchemy import inspect

    # create_all() is check-first, so re-running after a half-done build only adds what is missing;
    # the alembic stamp is written last, so its absence means "not finished".
    if not inspect(get_engine()).has_table("alembic_version", schema="public"):
        build_database()
    session_factory = get_session()
    with session_factory() as session:
        has_vo = vo_exists(vo="def", session=session)
        has_root = has_vo and account_exists(InternalAccount("root", vo="def"), session=session)
    if not has_vo:
        create_base_vo()
    if not has_root:
        create_root_account()
    print("rucio catalogue bootstrapped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
