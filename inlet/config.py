"""inlet's configuration: one TOML file plus ``INLET_*`` environment overrides.

Lookup order, highest first:

1. environment variables ``INLET_<SECTION>__<KEY>`` (double underscore between levels),
   e.g. ``INLET_BROKER__STOMP_PORT=61613`` or ``INLET_LAKE__STATE_DIR=/srv/lake``;
2. the TOML file named by ``--config`` / ``INLET_CONFIG``, else ``./inlet.toml`` if it exists;
3. the defaults below, which describe the embedded local lake on 127.0.0.1.

The defaults' ports deliberately avoid the standard ones (5432, 6379, 3306, 61613...) so
that a lake never fights a system PostgreSQL, Redis, MariaDB or broker on the same host.
Every field carries its description: ``inlet config doc`` renders the reference in README.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

# The naming rules live with the policy package, which the Rucio server loads without inlet's
# settings; defining them once there keeps the server and inlet's tools in agreement.
from rucio_inlet.naming import NamingSettings

from inlet.event_contract import RUN_NUMBER

ServiceName = Literal[
    "postgres",
    "rucio",
    "daemons",
    "activemq",
    "s3",
    "redis",
    "mariadb",
    "memcached",
    "conveyor",
    "uploader",
    "listener",
]
#: Services the lake runs only when [lake] manage names them: listeners compete for one queue,
#: and a second one would take events from a listener a site or a test runs by hand.
OPTIONAL_SERVICE_NAMES: tuple[ServiceName, ...] = ("listener",)
#: What the lake starts by default: every service but the optional ones.
SERVICE_NAMES: tuple[ServiceName, ...] = tuple(n for n in get_args(ServiceName) if n not in OPTIONAL_SERVICE_NAMES)


class _Section(BaseModel):
    # A misspelt key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


class RucioSettings(_Section):
    """Where clients reach Rucio and as whom."""

    host: str = Field("http://127.0.0.1:28080", description="Rucio server URL (REST and auth).")
    account: str = Field("root", description="Rucio account inlet acts as.")
    username: str = Field("inlet", description="userpass identity of that account.")
    password: str = Field(
        "inlet-secret", description="userpass password. The default is for development only: set your own."
    )
    vo: str = Field("def", description="Rucio VO (single-VO installations use 'def').")
    config: Path | None = Field(
        None,
        description="An existing rucio.cfg to use instead of the one the lake generates "
        "(how a site points inlet at its own Rucio).",
    )


class BrokerSettings(_Section):
    """The ActiveMQ broker that hermes publishes to and the listener consumes from."""

    host: str = Field("127.0.0.1", description="Broker host.")
    stomp_port: int = Field(26613, description="STOMP port.")
    openwire_port: int = Field(26616, description="OpenWire port (only the embedded broker opens it).")
    username: str = Field(
        "inlet", description="STOMP login of inlet's services (publish inlet_topic, read both topics and queues)."
    )
    password: str = Field(
        "inlet-secret", description="STOMP passcode of that login. The default is for development only: set your own."
    )
    hermes_username: str = Field("hermes", description="STOMP login of Rucio's hermes: may only publish rucio_topic.")
    hermes_password: str = Field(
        "hermes-secret", description="hermes' STOMP passcode. The default is for development only: set your own."
    )
    reader_username: str = Field(
        "reader", description="STOMP login of readers (analysts, the rehearsal's downloader): read both topics only."
    )
    reader_password: str = Field(
        "reader-secret", description="Readers' STOMP passcode. The default is for development only: set your own."
    )
    rucio_topic: str = Field("/topic/rucio.events", description="Where hermes publishes Rucio events.")
    inlet_topic: str = Field("/topic/inlet.events", description="Where inlet publishes its own events.")


class S3Settings(_Section):
    """The S3 endpoint behind the ``S3`` RSE."""

    endpoint: str = Field("http://127.0.0.1:29000", description="S3 REST endpoint URL.")
    region: str = Field("us-east-1", description="S3 region name.")
    access_key: str = Field("inlet", description="S3 access key id (default: development only).")
    secret_key: str = Field(
        "inlet-secret", description="S3 secret key (never logged). The default is for development only."
    )
    bucket: str = Field("inlet-lake", description="Bucket that holds the S3 RSE.")


class RedisSettings(_Section):
    """Redis, the Celery broker."""

    url: str = Field(
        "redis://:inlet-secret@127.0.0.1:26379/0",
        description="Redis URL used as the Celery broker, with its password (redis://:PASSWORD@host:port/db; "
        "the lake's Redis requires it). The default password is for the local lake only.",
    )


class CatalogSettings(_Section):
    """The run catalogue database."""

    url: str = Field(
        "",
        description="SQLAlchemy URL of the run catalogue. Empty: SQLite file <state_dir>/catalog.db "
        "(development only). Production: mysql+pymysql://user:pw@host/db (MariaDB).",
    )


class LakeSettings(_Section):
    """The embedded local data lake (``inlet lake``)."""

    state_dir: Path = Field(
        Path(".lake"), description="All lake state: configs, data, logs, pid files.", validate_default=True
    )
    manage: list[ServiceName] = Field(
        list(SERVICE_NAMES),
        description="Services the lake starts itself. Drop one to use an external instance "
        "configured in its own section instead.",
    )
    postgres_port: int = Field(25432, description="Port of the lake's private PostgreSQL (Rucio catalogue).")
    postgres_password: str = Field(
        "inlet-secret",
        description="Password of the rucio role of the lake's PostgreSQL (scram-sha-256); development only: "
        "change it for a shared host. Fixed when the cluster is created: changing it later needs `inlet lake "
        "down --purge`.",
    )
    mariadb_port: int = Field(
        23306, description="Port of the lake's private MariaDB (the run catalogue when [catalog] url points at it)."
    )
    memcached_port: int = Field(
        21211,
        description="Port of the lake's memcached, Rucio's cache ([cache] url in the generated rucio.cfg): "
        "without one, every RSE, attribute and account lookup is a database query.",
    )
    memcached: str = Field("memcached", description="memcached executable (Debian package).")
    memcached_mb: int = Field(64, ge=8, description="Memory (MB) of the lake's memcached.")
    postgres_bin: Path | None = Field(
        None, description="Directory with initdb/postgres. Default: newest /usr/lib/postgresql/*/bin."
    )
    rucio_workers: int = Field(
        1,
        ge=1,
        description="gunicorn worker processes of the Rucio server (each ~140 MB resident: the lake's "
        "memory is mostly Python processes).",
    )
    rucio_threads: int = Field(
        4,
        ge=1,
        description="Threads per Rucio server worker (gunicorn's gthread workers: a request waiting on "
        "PostgreSQL does not hold up the others). 1: gunicorn's sync workers, one request per process.",
    )
    rucio_python: str = Field(
        "",
        description="Python interpreter (a venv's bin/python with rucio and rucio-inlet) that runs the lake's "
        "Rucio server and rucio-* daemons, e.g. .venv-py39/bin/python to run them as Rucio's official images "
        "do (3.9). Empty: inlet's own. The gfal2 conveyor, hermes and the judge-evaluator stay on inlet's "
        "interpreter (gfal2's binding is built for it; they run through `inlet daemon`).",
    )
    daemon_sleep: int = Field(
        1,
        ge=1,
        description="Sleep time (s) of the other Rucio daemons (repairer, cleaner, injector, reaper (at least 2), "
        "undertaker, abacus). Short sleeps are for development only.",
    )
    flow_sleep: float = Field(
        0.25,
        gt=0,
        description="Sleep time (s) of the judge-evaluator and hermes, which every file waits for on its way "
        "(run by `inlet daemon` with sub-second sleeps), when flow_wake is off; with it, the wait after a "
        "failed pass.",
    )
    flow_wake: bool = Field(
        True,
        description="Wake the judge-evaluator, hermes and the conveyor when their work arrives (PostgreSQL "
        "LISTEN/NOTIFY from triggers the lake installs on Rucio's tables) instead of a pass every flow_sleep "
        "(or [transfers] *_sleep) seconds: a quiet idle lake and no sleep on a file's way.",
    )
    flow_idle: float = Field(
        10.0, gt=0, description="With flow_wake: seconds between two passes of a flow daemon nothing woke."
    )
    evaluator_max_pause: float = Field(
        2.0,
        gt=0,
        description="Longest pause (s) of a dataset the judge-evaluator found locked (Rucio's own: 60-600 s).",
    )
    activemq_home: Path = Field(Path("/usr/share/activemq"), description="ActiveMQ install (Debian package).")
    java: str = Field("java", description="Java executable for ActiveMQ.")
    s3_server: str = Field(
        "", description="moto_server executable. Default: .venv-s3/bin/moto_server next to the project."
    )
    redis_server: str = Field("redis-server", description="redis-server executable.")
    start_timeout: float = Field(60.0, description="Seconds to wait for a service to answer after start.")

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()


class PolicySettings(_Section):
    """The Rucio policy package the lake's server and daemons load."""

    package: str = Field(
        "rucio_inlet",
        description="Python package given to Rucio as [policy] package. Empty: Rucio's generic policy "
        "(no naming schema, no raw protection, no embargo).",
    )


class EmbargoSettings(_Section):
    """Releasing proprietary data once its embargo (DID metadata embargo_until) has passed."""

    public_rse_expression: str = Field(
        "public=True", description="Where `inlet embargo release` puts the public copy (RSE expression)."
    )
    copies: int = Field(1, ge=1, description="Copies of the public rule.")
    scopes: list[str] = Field(
        default_factory=list, description="Scopes searched for embargoed DIDs. Empty: every experiment scope."
    )


class TransfersSettings(_Section):
    """Replication without FTS: the conveyor with inlet's gfal2 transfertool (``inlet daemon conveyor``).

    Written into rucio.cfg ``[conveyor]`` (where the transfertool reads them) by the lake.
    """

    link_concurrency: int = Field(4, ge=1, description="Parallel gfal2 copies per (source, destination) RSE link.")
    transfer_timeout: int = Field(3600, ge=1, description="Seconds one gfal2 copy may take before it fails.")
    tape_recall_delay: int = Field(
        0, ge=0, description="Seconds a recall from a POSIX-backed TAPE RSE waits, to mimic a tape mount."
    )
    submitter_sleep: float = Field(0.25, gt=0, description="Seconds between conveyor submitter passes.")
    poller_sleep: float = Field(0.25, gt=0, description="Seconds between conveyor poller passes.")
    finisher_sleep: float = Field(0.25, gt=0, description="Seconds between conveyor finisher passes.")


class ListenerRoute(_Section):
    """One routing rule: which events a handler receives (every filter given must match)."""

    handler: str = Field(description="Handler name: a built-in or an `inlet.handlers` entry point.")
    event_types: list[str] = Field(
        default_factory=list, description="Event types (shell patterns, e.g. 'transfer-*'). Empty: all."
    )
    scopes: list[str] = Field(default_factory=list, description="DID scopes (patterns). Empty: all.")
    datasets: list[str] = Field(
        default_factory=list, description="Dataset names (patterns) from payload dataset/name. Empty: all."
    )
    rses: list[str] = Field(
        default_factory=list,
        description="RSEs (patterns) from payload rse/dst-rse; events that carry no RSE pass. Empty: all.",
    )
    runs: list[str] = Field(
        default_factory=list, description="Run numbers or ranges ('42', '100-200') taken from the DID name."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Handler-specific options.")


def _default_routes() -> list[ListenerRoute]:
    return [
        ListenerRoute(handler="catalog", event_types=["transfer-done", "datasetlock_ok", "rule_ok"]),
        ListenerRoute(handler="daq-release", event_types=["transfer-done", "datasetlock_ok", "rule_ok"]),
        # file-quarantined: the uploader's alarm (a DAQ file it could not take), from [broker] inlet_topic.
        ListenerRoute(handler="alarms", event_types=["transfer-failed", "file-quarantined"]),
        ListenerRoute(handler="reco", event_types=["datasetlock_ok", "rule_ok"]),
    ]


class AlarmSettings(_Section):
    """Alarms to a Discord/Slack/Mattermost-compatible incoming webhook."""

    webhook_url: str = Field("", description="Incoming-webhook URL. Empty: alarms are only logged.")
    rate_limit: int = Field(10, ge=1, description="At most this many alarms per rate_period (all instances).")
    rate_period: float = Field(60.0, gt=0, description="Seconds of the rate-limit window.")
    dedup_window: float = Field(600.0, gt=0, description="Identical alarms within this many seconds are sent once.")
    timeout: float = Field(10.0, gt=0, description="Seconds to wait for the webhook to answer.")
    rule_check_interval: float = Field(
        300.0, ge=0, description="Seconds between looks for STUCK (or long unfinished) rules in Rucio; 0: off."
    )
    rule_not_ok_after: float = Field(
        86400.0, ge=0, description="A rule still replicating this many seconds after creation raises an alarm; 0: off."
    )


class RecoSettings(_Section):
    """Reconstruction trigger: a run's raw dataset complete on a processing RSE starts its reconstruction."""

    backend: Literal["celery", "condor"] = Field(
        "celery", description="Where jobs run: a Celery worker (Redis broker) or HTCondor (condor_submit)."
    )
    processing_rses: list[str] = Field(
        default_factory=lambda: ["S3"], description="RSEs reconstruction reads from (a datasetlock_ok there starts it)."
    )
    command: list[str] = Field(
        default_factory=lambda: ["{python}", "-m", "inlet.listener.reco_example", "{output_dir}", "{inputs}"],
        description="Reconstruction command; {inputs} expands to the downloaded files, {output_dir} to where "
        "outputs go, {run} to the run number, {python} to this interpreter.",
    )
    scope: str = Field("", description="Scope of the outputs. Empty: <experiment>.reco.")
    rse: str = Field("S3", description="RSE the outputs are uploaded to (and their dataset's rule points at).")
    work_dir: Path = Field(Path("/tmp/inlet-reco"), description="Scratch space for inputs and outputs.")
    timeout: int = Field(3600, ge=1, description="Seconds the reconstruction command may run.")


class ListenerSettings(_Section):
    """``inlet listen``: durable, exactly-once-in-effect reactions to Rucio and inlet events."""

    consumer: str = Field("inlet-listener", description="Name of this listener in the processed-events ledger.")
    rucio_queue: str = Field(
        "/queue/inlet.listener.rucio",
        description="Queue the broker fills from [broker] rucio_topic (composite topic); listeners compete on it.",
    )
    inlet_queue: str = Field(
        "/queue/inlet.listener.inlet", description="Queue the broker fills from [broker] inlet_topic."
    )
    dlq: str = Field("/queue/inlet.listener.dlq", description="Dead-letter queue: events that cannot be handled.")
    prefetch: int = Field(500, ge=1, description="Unacknowledged messages the broker may push to one listener.")
    batch_size: int = Field(250, ge=1, description="Events handled in one catalogue transaction.")
    heartbeat_ms: int = Field(5000, ge=0, description="STOMP heart-beat interval (ms) both ways; 0: off.")
    reconnect_initial: float = Field(0.5, gt=0, description="First wait (s) before reconnecting to the broker.")
    reconnect_max: float = Field(30.0, gt=0, description="Longest wait (s) between reconnection attempts.")
    max_body_bytes: int = Field(262144, ge=1024, description="Larger message bodies go to the DLQ unread.")
    handler_attempts: int = Field(
        3, ge=1, description="Attempts of a failing handler before its event goes to the DLQ."
    )
    max_deliveries: int = Field(
        5,
        ge=2,
        description="Deliveries of one message that end unsettled (its listener died or was stopped while "
        "holding it) before the message goes to the DLQ: a message that kills the listener cannot crash-loop it.",
    )
    retry_backoff: float = Field(0.5, ge=0, description="Seconds before the first retry of a failed handler (doubles).")
    outbox_interval: float = Field(2.0, gt=0, description="Seconds between sweeps of unsent outbox messages.")
    s3_rses: list[str] = Field(default_factory=lambda: ["S3"], description="RSEs whose copies mean ON_S3.")
    tape_rses: list[str] = Field(default_factory=lambda: ["TAPE"], description="RSEs whose copies mean ON_TAPE.")
    run_pattern: str = Field(
        RUN_NUMBER,
        description="Regular expression with a group 'run' that finds the run number in a DID name.",
    )
    metrics_port: int = Field(0, ge=0, description="Prometheus metrics on <metrics_host>:<port>; 0: off.")
    metrics_host: str = Field(
        "127.0.0.1", description="Address the metrics endpoint binds (0.0.0.0: a Prometheus in another container)."
    )
    routes: list[ListenerRoute] = Field(
        default_factory=_default_routes, description="Routing rules ([[listener.routes]] tables)."
    )
    alarms: AlarmSettings = Field(default_factory=AlarmSettings, description="Alarm webhook ([listener.alarms]).")
    reco: RecoSettings = Field(default_factory=RecoSettings, description="Reconstruction trigger ([listener.reco]).")


class RulePolicy(_Section):
    """One replication rule a stream asks for, placed on each run dataset when it is created."""

    rse_expression: str = Field(description="Where the copies go (Rucio RSE expression), e.g. 'S3' or 'TAPE'.")
    copies: int = Field(1, ge=1, description="Number of copies.")
    lifetime: int | None = Field(None, ge=1, description="Seconds the rule lives (a buffer); none: forever.")
    notify: Literal["N", "Y", "C", "P"] = Field(
        "C", description="Rucio notify flag: C emits rule_ok/datasetlock_ok when complete (the release signal)."
    )
    activity: str = Field("User Subscriptions", description="Transfer activity of the rule.")
    delay_injection: int | None = Field(
        None, ge=1, description="Seconds before Rucio injects the rule (its locks wait until then)."
    )
    per_file: bool = Field(
        False,
        description="Put the rule on each file as it is registered, not on the run dataset: the transfer is "
        "requested at once (no judge-evaluator pass), and the conveyor's finisher never fights the evaluator "
        "over the rule of a growing dataset (Rucio then defers the replica for 20 min). For streams that must "
        "move in seconds.",
    )

    grouping: Literal["auto", "DATASET", "NONE"] = Field(
        "auto",
        description="Rucio grouping of a run-dataset rule. DATASET keeps a dataset on one RSE and emits "
        "datasetlock_ok, but Rucio's evaluator then reads every file of the dataset on each attach (its "
        "cost grows with the run). auto: NONE when nothing depends on it (notify 'N' and the expression "
        "names exactly as many RSEs as copies, so there is no placement to keep together), else DATASET.",
    )

    @model_validator(mode="after")
    def _file_rules_notify(self) -> RulePolicy:
        if self.per_file and self.notify in ("C", "P"):
            # Rucio 41 reads the 'open' flag of the rule's DID when it completes; a file has none,
            # and the finisher then fails to mark the replica AVAILABLE, for ever (KeyError 'open').
            raise ValueError(
                f"rule to {self.rse_expression}: per_file rules take notify 'Y' or 'N', not {self.notify!r} "
                "(C and P are for datasets; on a file Rucio's finisher fails and the replica stays COPYING)"
            )
        return self


def _raw_rules() -> list[RulePolicy]:
    return [
        RulePolicy(rse_expression="SITE_A_DISK", lifetime=30 * 86400, notify="N"),
        RulePolicy(rse_expression="S3"),
        RulePolicy(rse_expression="TAPE"),
    ]


class StreamPolicy(_Section):
    """What happens to the files of one data stream (``inlet upload --stream NAME``)."""

    tier: str = Field("raw", description="Data tier: files go to scope <experiment>.<tier> (see [naming]).")
    rules: list[RulePolicy] = Field(default_factory=_raw_rules, description="Rules on every run dataset.")
    release: bool = Field(
        True, description="Free the DAQ copy once every rule of the file is OK (false: never touch it)."
    )


def _default_streams() -> dict[str, StreamPolicy]:
    return {"raw": StreamPolicy()}


class UploaderSettings(_Section):
    """The paced Celery uploader (``celery -A inlet.uploader worker``, ``inlet upload``, ``inlet watch``)."""

    first_rse: str = Field("SITE_A_DISK", description="RSE that receives the bytes and the first replica.")
    queue: str = Field("inlet.upload", description="Celery queue of upload tasks.")
    batch_size: int = Field(
        100, ge=1, description="Files per task: registered with one add_replicas and one attach call."
    )
    files_per_second: float = Field(0.0, ge=0, description="Global rate limit (all workers) in files/s; 0: unlimited.")
    bytes_per_second: float = Field(0.0, ge=0, description="Global rate limit (all workers) in bytes/s; 0: unlimited.")
    burst_files: float = Field(10.0, gt=0, description="Token-bucket depth in files (how far a burst may run ahead).")
    burst_bytes: float = Field(
        100e6, gt=0, description="Token-bucket depth in bytes; a batch larger than this is paced in parts."
    )
    rse_concurrency: dict[str, int] = Field(
        default_factory=lambda: {"SITE_A_DISK": 4},
        description="At most this many batches write to an RSE at once (all workers); RSEs not listed: unlimited.",
    )
    streams: dict[str, StreamPolicy] = Field(
        default_factory=_default_streams, description="Per stream policy ([uploader.streams.NAME])."
    )
    container_span: int = Field(
        1000, ge=1, description="Runs per run container (runsNNNNNN-MMMMMM.<tier>) when [naming] defines containers."
    )
    daq_roots: list[Path] = Field(
        default_factory=list,
        description="Directories the uploader may read DAQ files from; a path (symlinks resolved) outside "
        "them is refused, by the CLI and again by the worker. Empty: `inlet upload` and `inlet watch` grant "
        "the directories they are given (each file's directory, DIR) in the uploader's state directory, and "
        "workers sharing that state directory accept those; set it in production.",
    )
    quarantine_dir: Path = Field(
        Path("quarantine"), description="Bad files go here with a <name>.reason.json (relative: under state_dir)."
    )
    state_dir: Path = Field(
        Path(".inlet-uploader"),
        description="Uploader state: DAQ copies awaiting release (relative: under [lake] state_dir).",
    )
    done_dir: Path | None = Field(None, description="Released DAQ copies are moved here; none: they are deleted.")
    release_poll: float = Field(30.0, gt=0, description="Seconds between polls of Rucio for files awaiting release.")
    stable_seconds: float = Field(
        5.0, ge=0, description="`inlet watch`: a file without sidecar is closed when size and mtime are this old."
    )
    sidecar_suffix: str = Field(
        ".json", description="`inlet watch`: <file><suffix> is the DAQ's closed-file sidecar with metadata."
    )
    retries: int = Field(8, ge=0, description="Retries of a batch after a Rucio/storage error (exponential backoff).")
    visibility_timeout: int = Field(
        3600,
        ge=5,
        description="Seconds after which Redis hands a task of a killed worker to another worker; longer than "
        "any batch may take, waits for pacing tokens included.",
    )
    retry_backoff: float = Field(1.0, gt=0, description="First retry delay (s); doubles, with jitter, up to 300 s.")
    metrics_port: int = Field(
        0,
        ge=0,
        description="Prometheus metrics of a worker (files, bytes, errors, batch time, close/submit -> registered "
        "latency; all its pool processes summed) on <metrics_host>:<port>; 0: off. One port per worker on a host.",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address the metrics endpoint binds (0.0.0.0: a Prometheus in another container)."
    )


class RehearseSettings(_Section):
    """``inlet rehearse``: the EGO/Virgo data-lake dress rehearsal replayed on this lake."""

    experiment: str = Field("virgo", description="Experiment (scope <experiment>.raw) the rehearsal writes to.")
    stream: str = Field("hrec", description="Stream in the chunk names (run<run>_<stream>_<gps>.gwf).")
    download_rse: str = Field(
        "SITE_B_DISK", description="Site B: where both downloaders fetch the replicated chunks from."
    )
    extra_rses: list[str] = Field(
        default_factory=list, description='More replication targets per run dataset, e.g. ["S3", "TAPE"].'
    )
    poll_interval: float = Field(
        5.0, gt=0, description="Seconds between dataset listings of the polling downloader (the EGO baseline)."
    )
    download_workers: int = Field(4, ge=1, description="Parallel downloads per downloader.")
    drain_timeout: float = Field(
        180.0, gt=0, description="Seconds to wait after the last chunk before counting what is missing as lost."
    )
    report_dir: Path = Field(
        Path("rehearsal"), description="Reports go to <report_dir>/<timestamp>/ (relative: the current directory)."
    )


class FollowSettings(_Section):
    """``inlet follow``: how a follower waits for new files (the catalogue is read, events wake it)."""

    tick: float = Field(
        5.0, gt=0, description="Seconds between looks at the catalogue when no event came (safety net)."
    )
    burst: float = Field(
        10.0,
        ge=0,
        description="Seconds a follower keeps looking (a cheap MAX(id)) after an event: the listener writes the "
        "row after the event reached everyone, seconds later on a loaded host.",
    )
    burst_every: float = Field(0.05, gt=0, description="Seconds between looks during that burst.")
    gap_timeout: float = Field(
        5.0, gt=0, description="Seconds after which a missing availability id counts as a rolled-back insert."
    )
    batch: int = Field(200, ge=1, le=10000, description="Rows read per catalogue query.")
    connect_timeout: float = Field(
        30.0, gt=0, description="Seconds a named follower waits for its broker name (held by a run that just died)."
    )


class WebSettings(_Section):
    """``inlet web``: the status pages for shift workers, behind Rucio logins."""

    host: str = Field("127.0.0.1", description="Address the web server binds (0.0.0.0 only behind a TLS proxy).")
    port: int = Field(8480, ge=1, le=65535, description="Port of the web server.")
    secret: str = Field(
        "",
        description="Key that signs session cookies and CSRF tokens. Empty: a random key per start (everyone "
        "logs in again after a restart). Set one for a shared host.",
    )
    session_hours: float = Field(
        12.0, gt=0, description="Hours a login lasts (at most as long as the Rucio token it was checked with)."
    )
    https_only: bool = Field(False, description="Send the session cookie over HTTPS only (true behind a TLS proxy).")
    data_manager_attribute: str = Field(
        "data-manager",
        description="Rucio account attribute of data managers, who may act (replay a DLQ entry, boost a rule); "
        "root always may.",
    )
    collaboration_attribute: str = Field(
        "collaboration",
        description="Rucio account attribute of collaboration members, who see runs under embargo. Other "
        "accounts see public runs and counts only.",
    )
    page_size: int = Field(50, ge=1, le=1000, description="Runs per page of the runs page.")
    metrics_port: int = Field(
        0, ge=0, description="Prometheus metrics of the web server on <metrics_host>:<port>; 0: off."
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address the metrics endpoint binds (0.0.0.0: a Prometheus in another container)."
    )


def _toml_path() -> Path | None:
    explicit = os.environ.get("INLET_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"INLET_CONFIG names {path}, which does not exist")
        return path
    default = Path("inlet.toml")
    return default if default.is_file() else None


class Settings(BaseSettings):
    """All of inlet's configuration."""

    model_config = SettingsConfigDict(env_prefix="INLET_", env_nested_delimiter="__", extra="forbid")

    rucio: RucioSettings = Field(default_factory=RucioSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    lake: LakeSettings = Field(default_factory=LakeSettings)
    transfers: TransfersSettings = Field(default_factory=TransfersSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    naming: NamingSettings = Field(default_factory=NamingSettings)
    embargo: EmbargoSettings = Field(default_factory=EmbargoSettings)
    listener: ListenerSettings = Field(default_factory=ListenerSettings)
    uploader: UploaderSettings = Field(default_factory=UploaderSettings)
    rehearse: RehearseSettings = Field(default_factory=RehearseSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    follow: FollowSettings = Field(default_factory=FollowSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = _toml_path()
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    def catalog_url(self) -> str:
        return self.catalog.url or f"sqlite:///{self.lake.state_dir / 'catalog.db'}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings; ``config_file`` wins over ``INLET_CONFIG`` and ``./inlet.toml``."""
    if config_file is not None:
        os.environ["INLET_CONFIG"] = str(config_file)
    return Settings(**overrides)


def metrics_url(host: str, port: int) -> str:
    """Where to read a metrics endpoint bound to HOST:PORT from this host (a wildcard bind: loopback)."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - a bind address read back, not bound here
        host = "127.0.0.1"
    return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"


def reference_markdown() -> str:
    """The configuration reference, generated from the models so it cannot drift from the code."""
    lines = ["| key | env override | default | meaning |", "|---|---|---|---|"]

    def row(dotted: str, env: str, default: Any, description: str | None) -> None:
        shown = "" if default is None else str(default)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        shown = shown.replace("|", "\\|")
        lines.append(f"| `{dotted}` | `{env}` | `{shown}` | {description or ''} |")

    def walk(model: type[Any], dotted: str, env: str) -> None:
        if dataclasses.is_dataclass(model):
            # [naming] is rucio_inlet's dataclass (the Rucio side has no pydantic): same table.
            for f in dataclasses.fields(model):
                factory: Any = f.default_factory
                default = (
                    (None if f.default is dataclasses.MISSING else f.default)
                    if factory is dataclasses.MISSING
                    else factory()
                )
                row(f"{dotted}.{f.name}", f"{env}__{f.name.upper()}", default, f.metadata.get("description"))
            return
        for key, sub in model.model_fields.items():
            ann = sub.annotation
            if isinstance(ann, type) and (issubclass(ann, BaseModel) or dataclasses.is_dataclass(ann)):
                # A nested table such as [listener.alarms]: list its keys, not its repr.
                walk(ann, f"{dotted}.{key}", f"{env}__{key.upper()}")
                continue
            default = sub.default if sub.default_factory is None else sub.default_factory()  # type: ignore[call-arg,unused-ignore]
            row(f"{dotted}.{key}", f"{env}__{key.upper()}", default, sub.description)

    for section, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and (issubclass(model, BaseModel) or dataclasses.is_dataclass(model))
        walk(model, section, f"INLET_{section.upper()}")
    return "\n".join(lines)


# -- secrets ------------------------------------------------------------------------------------
#: A setting (or dict key) whose name says it holds a secret.
SECRET_NAME = re.compile(r"secret|password|passwd|passcode|pwd|key|token|credential|webhook", re.IGNORECASE)
MASK = "***"
#: The password of a URL's userinfo: scheme://user:PASSWORD@host (user may be empty: redis://:pw@h).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*:)(?P<pw>[^@/\s]+)(?=@)")
#: Secret-looking query parameters (presigned URLs: X-Amz-Signature, X-Amz-Credential, token=...).
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&][\w.-]*(?:token|signature|secret|password|credential|key)[\w.-]*=)(?P<value>[^&\s\"']+)",
    re.IGNORECASE,
)
#: Incoming-webhook URLs carry their token in the path (Slack /services/..., Mattermost /hooks/...,
#: Discord /api/webhooks/...): everything after the host goes.
_WEBHOOK_PATH = re.compile(r"(?P<head>https?://[^/\s]+/)(?P<path>(?:services|hooks|api/webhooks)/[^\s\"']+)")
#: Known secret values shorter than this are not replaced in free text (a default S3 access key
#: "inlet" would otherwise blank out every logger name); fields and URLs are masked regardless.
MIN_KNOWN_SECRET = 6


def mask_text(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with URL passwords, secret query parameters, webhook paths and ``known`` values masked."""
    for value in sorted({k for k in known if len(k) >= MIN_KNOWN_SECRET}, key=len, reverse=True):
        text = text.replace(value, MASK)
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    text = _QUERY_SECRET.sub(lambda m: m["head"] + MASK, text)
    return _WEBHOOK_PATH.sub(lambda m: m["head"] + MASK, text)


def mask_secrets(data: Any, name: str = "") -> Any:
    """A copy of ``data`` (a settings dump: dicts, lists, scalars) fit to print.

    A string under a secret-sounding name is replaced whole (a webhook URL keeps only its host);
    every other string still loses URL passwords and tokens. Used by ``inlet config show``.
    """
    if isinstance(data, dict):
        return {k: mask_secrets(v, str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [mask_secrets(v, name) for v in data]
    if not isinstance(data, str) or not data:
        return data
    if "webhook" in name.lower():
        m = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s]+/?", data)
        return (m.group(0).rstrip("/") + "/" + MASK) if m else MASK
    if SECRET_NAME.search(name):
        return MASK
    return mask_text(data)


def secret_values(settings: Settings) -> set[str]:
    """Every secret the settings hold, as plain strings: what the log filter blanks out of free text."""
    found: set[str] = set()

    def walk(data: Any, name: str) -> None:
        if isinstance(data, dict):
            for k, v in data.items():
                walk(v, str(k))
        elif isinstance(data, list):
            for v in data:
                walk(v, name)
        elif isinstance(data, str) and data:
            if SECRET_NAME.search(name):
                found.add(data)
                m = _WEBHOOK_PATH.search(data)
                if m:
                    found.add(m["path"])
            for m in _URL_PASSWORD.finditer(data):
                found.add(m["pw"])

    walk(settings.model_dump(mode="json"), "")
    return found
