"""What a data manager may do from the web: replay one dead letter, boost one rule.

The caller (:mod:`inlet.web.app`) has already checked the role and the CSRF token. A replay
uses inlet's own DLQ code with the web server's broker login. A boost runs as the web server's
Rucio account: Rucio's generic policy (kept by inlet's) lets only root and ``admin`` accounts
update a rule, so a data manager's own token would be refused; the web's role check stands in,
and the log names the person. A rule is boosted only if it belongs to a run the manager can see
(a rule id from elsewhere is refused), and only when it is not OK already.
"""

from __future__ import annotations

import logging

from inlet.config import Settings
from inlet.errors import InletError
from inlet.web.rucio_rest import RucioRest

log = logging.getLogger("inlet.web.actions")


class ActionRefused(InletError):
    """An action that was not carried out; the message says why."""


def replay_dead_letter(settings: Settings, dlq_id: str, account: str) -> str:
    from inlet.listener.dlq import DeadLetterQueue

    done = DeadLetterQueue(settings.broker, settings.listener).replay([dlq_id])
    if not done:
        raise ActionRefused(f"nothing replayed for {dlq_id!r}")
    log.info("DLQ message %s replayed by %s", done[0], account)
    return done[0]


def boost_rule(rucio: RucioRest, rule_id: str, dataset: str, account: str) -> None:
    rule = rucio.rule(rule_id)
    if f"{rule.get('scope')}:{rule.get('name')}" != dataset:
        raise ActionRefused(f"rule {rule_id} is not a rule of {dataset}")
    if rule.get("state") == "OK":
        raise ActionRefused(f"rule {rule_id} is OK already: nothing to boost")
    rucio.boost_rule(rule_id)
    log.info("rule %s on %s boosted by %s", rule_id, dataset, account)
