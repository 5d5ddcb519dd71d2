"""The rucio.cfg and alembic.ini the lake generates for its server, daemons and clients.

One file serves all three, as in Rucio's own dev containers: the server reads ``[database]``,
the daemons ``[messaging-hermes]`` and friends, the ``rucio`` CLI ``[client]``.
"""

from __future__ import annotations

import configparser
import io
import json
from pathlib import Path

from inlet.config import Settings
from inlet.lake.services.base import LakePaths


def rucio_package_dir() -> Path:
    # Located from the installed distribution, without importing rucio (its import reads the config).
    import importlib.util

    spec = importlib.util.find_spec("rucio")
    if spec is None or spec.origin is None:
        raise RuntimeError("the rucio package is not installed in this environment")
    return Path(spec.origin).parent


#: The mail templates Rucio's rule code opens (approval requests, approvals, denials, rule OK).
MAIL_TEMPLATES = (
    "rule_approval_request.tmpl",
    "rule_approved_user.tmpl",
    "rule_approved_admin.tmpl",
    "rule_denied_user.tmpl",
    "rule_denied_admin.tmpl",
    "rule_ok_notification.tmpl",
)


def shipped_mail_templates() -> Path | None:
    """The directory of mail templates the installed Rucio ships (``<prefix>/rucio/etc/mail_templates``)."""
    import importlib.metadata

    try:
        files = importlib.metadata.distribution("rucio").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == MAIL_TEMPLATES[0] and f.parent.name == "mail_templates":
            folder = Path(str(f.locate())).resolve().parent
            if all((folder / name).is_file() for name in MAIL_TEMPLATES):
                return folder
    return None


def mail_templates_dir(paths: LakePaths) -> Path:
    """Where [common] mailtemplatedir points: Rucio's own templates, else minimal ones in the state dir."""
    return shipped_mail_templates() or paths.conf / "mail_templates"


def write_mail_templates(folder: Path) -> None:
    """Minimal templates (Rucio's placeholders) for a Rucio installed without its data files."""
    folder.mkdir(parents=True, exist_ok=True)
    body = "Rule $rule_id ($scope:$name to $rse_expression): {what}.\nApprover: $approver\n"
    texts = {
        "rule_approval_request.tmpl": "Rule $rule_id asks for approval: $scope:$name to $rse_expression "
        "($did_type, $length files, $bytes bytes) by $account.\nComment: $comment\n",
        "rule_approved_user.tmpl": body.format(what="approved"),
        "rule_approved_admin.tmpl": "Rule $rule_id was approved by $approver.\n",
        "rule_denied_user.tmpl": body.format(what="denied") + "Reason: $reason\n",
        "rule_denied_admin.tmpl": "Rule $rule_id was denied by $approver.\nReason: $reason\n",
        "rule_ok_notification.tmpl": "Rule $rule_id ($scope:$name to $rse_expression) is OK.\n",
    }
    for name in MAIL_TEMPLATES:
        (folder / name).write_text(texts[name])


def naming_file(paths: LakePaths) -> Path:
    """The naming rules (inlet's [naming]) as the policy package inside Rucio reads them."""
    return paths.conf / "naming.json"


def render_naming(settings: Settings) -> str:
    return json.dumps(settings.naming.to_dict(), indent=2)


def render_alembic_ini(paths: LakePaths, db_url: str) -> str:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg["alembic"] = {
        # Must be absolute: Rucio runs alembic from whatever directory the daemon started in.
        "script_location": str(rucio_package_dir() / "db" / "sqla" / "migrate_repo"),
        # alembic reads this file with %-interpolation: a %-quoted password character must be doubled.
        "sqlalchemy.url": db_url.replace("%", "%%"),
        "version_table_schema": "public",
    }
    # Rucio's migrate_repo/env.py calls logging.config.fileConfig() on this very file.
    cfg["loggers"] = {"keys": "root"}
    cfg["handlers"] = {"keys": "console"}
    cfg["formatters"] = {"keys": "generic"}
    cfg["logger_root"] = {"level": "WARNING", "handlers": "console"}
    cfg["handler_console"] = {"class": "StreamHandler", "args": "(sys.stderr,)", "formatter": "generic"}
    cfg["formatter_generic"] = {"format": "%(levelname)s %(name)s %(message)s"}
    return _dump(cfg)


def render_rucio_cfg(settings: Settings, paths: LakePaths, db_url: str) -> str:
    r, b = settings.rucio, settings.broker
    cfg = configparser.ConfigParser(interpolation=None)
    # No multi_vo key: create_root_account() reads it with bool(str), so even "False" means True.
    cfg["common"] = {
        "logdir": str(paths.logs),
        "loglevel": "INFO",
        # Rule approval (ask_approval, approve_rule) and rule-OK mails open templates here: without
        # it approve_rule answers HTTP 500.
        "mailtemplatedir": str(mail_templates_dir(paths)),
    }
    cfg["client"] = {
        "rucio_host": r.host,
        "auth_host": r.host,
        "auth_type": "userpass",
        "username": r.username,
        "password": r.password,
        "account": r.account,
        "request_retries": "3",
        # Each lake keeps its own token: two lakes (or a lake and a site) never share a cache.
        "auth_token_file_path": str(paths.tmp / "rucio-token" / f"auth_token_{r.account}"),
    }
    cfg["database"] = {
        "default": db_url,
        "schema": "public",
        "echo": "0",
        "pool_size": "10",
        "max_overflow": "20",
        "pool_reset_on_return": "rollback",
    }
    cfg["alembic"] = {"cfg": str(paths.conf / "alembic.ini")}
    cfg["bootstrap"] = {
        "userpass_identity": r.username,
        "userpass_pwd": r.password,
        "userpass_email": "inlet@localhost",
        # Empty, so that Rucio does not map its well-known demo X509/GSS/SSH identities to root.
        "x509_identity": "",
        "gss_identity": "",
        "ssh_identity": "",
    }
    cfg["policy"] = {
        # permission/schema name the fallback Rucio uses when no package is set ([policy] package = "").
        "permission": "generic",
        "schema": "generic",
        "lfn2pfn_algorithm_default": "hash",
        "support": "inlet lake",
        "support_rucio": "https://github.com/rucio/rucio/issues",
    }
    if settings.policy.package:
        cfg["policy"]["package"] = settings.policy.package
        # The policy package runs inside Rucio without inlet's settings: it reads the naming rules here.
        cfg["policy"]["inlet_naming_file"] = str(naming_file(paths))
    cfg["api"] = {"endpoints": ""}
    cfg["hermes"] = {"services_list": "activemq", "send_email": "False"}
    cfg["messaging-hermes"] = {
        "brokers": b.host,
        "port": str(b.stomp_port),
        "nonssl_port": str(b.stomp_port),
        "use_ssl": "False",
        "destination": b.rucio_topic,
        "username": b.hermes_username,
        "password": b.hermes_password,
        "voname": "inlet",
    }
    # Run-level metadata from inlet's run catalogue, then embargo_until (stored as JSON, but
    # never deletable: rucio_inlet.embargo_meta); Rucio's JSON plugin (which claims every
    # key) must stay last so that it only gets the keys the others do not own.
    cfg["metadata"] = {
        "plugins": "rucio_inlet.runmeta.RunMetaPlugin,rucio_inlet.embargo_meta.EmbargoMetaPlugin,"
        "rucio.core.did_meta_plugins.json_meta.JSONDidMeta",
        "inlet_catalog_url": settings.catalog_url(),
    }
    if "memcached" in settings.lake.manage:
        # Rucio's cache (RSEs, attributes, expressions, accounts); off unless a memcached answers here.
        cfg["cache"] = {"url": f"127.0.0.1:{settings.lake.memcached_port}"}
    cfg["monitor"] = {"enable_metrics": "False"}
    cfg["credentials"] = {"gcs": "", "signature_lifetime": "3600"}
    # Replication without FTS: inlet's gfal2 transfertool, run by `inlet daemon conveyor`.
    tr = settings.transfers
    cfg["conveyor"] = {
        "transfertool": "gfal2",
        "gfal2_link_concurrency": str(tr.link_concurrency),
        "gfal2_transfer_timeout": str(tr.transfer_timeout),
        "gfal2_tape_recall_delay": str(tr.tape_recall_delay),
        # Rucio's finisher declares the source replica SUSPICIOUS on these transfer errors.
        "suspicious_pattern": ".*SOURCE CHECKSUM MISMATCH.*",
    }
    # Rucio reads rucio.cfg with %-interpolation: a literal % (in a password) must be doubled.
    for section in cfg.sections():
        for option, value in cfg.items(section):
            cfg[section][option] = value.replace("%", "%%")
    return _dump(cfg)


def _dump(cfg: configparser.ConfigParser) -> str:
    buf = io.StringIO()
    cfg.write(buf)
    return buf.getvalue()
