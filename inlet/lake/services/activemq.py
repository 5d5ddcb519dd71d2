"""ActiveMQ 5.17 from Debian's package, with STOMP and a persistent KahaDB store.

Debian's package ships no running broker and its default instance opens only OpenWire, so the
lake writes its own broker XML: STOMP on loopback, persistence on (durable subscriptions and
queued messages survive a broker restart), one login per role with ActiveMQ's authorization
plugin (see :meth:`ActiveMQ.authorization_entries`), and no web console. The XML holds the
passwords: it is written 0600.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from xml.sax.saxutils import quoteattr

from inlet.lake.errors import LakeError
from inlet.lake.services.base import Service, require_executable

BROKER_XML = """<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
       http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <!-- populateJMSXUserID: every message carries the login that published it (JMSXUserID), set by
       the broker, so a dead letter shows who sent it. -->
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="inlet-lake" useJmx="false"
          persistent="true" dataDirectory={data} schedulerSupport="false"
          populateJMSXUserID="true" useAuthenticatedPrincipalForJMSXUserID="true">
    <!-- Each topic is also copied into a queue (forwardOnly=false keeps plain topic subscribers working):
         the queue holds events while no listener runs, and listener instances compete on it. -->
    <destinationInterceptors><virtualDestinationInterceptor><virtualDestinations>
{composites}
    </virtualDestinations></virtualDestinationInterceptor></destinationInterceptors>
    <!-- The forwarded-to queues exist from start: a forward would otherwise create the queue on the
         publisher's behalf, which needs the "admin" right that hermes is not given. -->
    <destinations>
{queues}
    </destinations>
    <destinationPolicy>
      <policyMap><policyEntries>
        <!-- Messages that exhaust their redeliveries go to ActiveMQ.DLQ.<destination>, not one shared DLQ. -->
        <!-- memoryLimit: a destination caches at most this much of its pending messages on the heap;
             the rest stay in KahaDB until a consumer reaches them. A queue with no consumer (the
             listener's, in a rehearsal that runs none) otherwise filled the broker's whole
             memoryUsage, and the heap with it (~400 MB resident in the 10x full rehearsal); a
             full broker then held every publisher back (producer flow control): hermes and the
             uploader slowed, and the rehearsal's latency grew 1.7x from its tenth minute on. -->
        <policyEntry queue="&gt;" persistJMSRedelivered="true" memoryLimit="8mb">
          <deadLetterStrategy>
            <individualDeadLetterStrategy queuePrefix="DLQ." useQueueForQueueMessages="true"/>
          </deadLetterStrategy>
        </policyEntry>
        <policyEntry topic="&gt;" producerFlowControl="true" memoryLimit="8mb"/>
      </policyEntries></policyMap>
    </destinationPolicy>
    <persistenceAdapter><kahaDB directory={kahadb} indexCacheSize="2000"/></persistenceAdapter>
    <!-- One login per role; what each may do is enforced here, not trusted to the clients:
         hermes only publishes Rucio's topic; inlet's services publish inlet's topic and use the
         queues (listener queues, DLQ); readers only subscribe to the two topics. Every client needs
         the advisory topics (ActiveMQ publishes consumer/producer advisories on their behalf). -->
    <plugins>
      <!-- Answers ActiveMQ.Statistics.Destination.<pattern> requests: queue depth per destination
           (inlet.broker_stats, the listener's inlet_broker_queue_size metric). -->
      <statisticsBrokerPlugin/>
      <simpleAuthenticationPlugin anonymousAccessAllowed="false">
        <users>
          <authenticationUser username={user} password={password} groups="inlet"/>
          <authenticationUser username={hermes_user} password={hermes_password} groups="hermes"/>
          <authenticationUser username={reader_user} password={reader_password} groups="readers"/>
        </users>
      </simpleAuthenticationPlugin>
      <authorizationPlugin><map><authorizationMap><authorizationEntries>
{authorization}
      </authorizationEntries></authorizationMap></map></authorizationPlugin>
    </plugins>
    <systemUsage><systemUsage>
      <!-- A quarter of the heap (-Xmx below): ActiveMQ's accounting of a message's size is well
           under what the message costs on the heap, and with 128 mb against a 192m heap the broker
           ran out of heap in the 10x full rehearsal instead of applying flow control. -->
      <memoryUsage><memoryUsage limit="96 mb"/></memoryUsage>
      <storeUsage><storeUsage limit="2 gb"/></storeUsage>
      <tempUsage><tempUsage limit="512 mb"/></tempUsage>
    </systemUsage></systemUsage>
    <transportConnectors>
      <transportConnector name="openwire" uri="tcp://127.0.0.1:{openwire}"/>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:{stomp}?transport.hbGracePeriodMultiplier=2"/>
    </transportConnectors>
  </broker>
</beans>
"""

LOG4J = """rootLogger.level = INFO
rootLogger.appenderRef.console.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d | %-5p | %m | %c | %t%n
"""


#: The broker's JVM sized for a lake: a heap of four times [memoryUsage] (above), which it only
#: takes when the messages need it (-Xms32m: the idle broker stays small), KahaDB's index cache
#: at 2,000 pages (8 MB, against 40 MB by default), the serial collector (no GC threads per core),
#: and the client compiler alone (C1: a tenth of C2's compiler memory and code cache; a broker
#: passing tens of messages a second does not need C2's code). About 75 MB resident at idle
#: against 115 MB with the JVM's defaults. A broker out of heap exits (its clients reconnect to
#: a restarted one) rather than keep its port open and answer nothing, as it did at -Xmx192m.
JVM_MEMORY = (
    "-Xms32m",
    "-Xmx384m",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:ReservedCodeCacheSize=32m",
    "-XX:MaxMetaspaceSize=96m",
    "-Xss512k",
)

#: Jars Debian's activemq package leaves out and ActiveMQ's own distribution ships in lib/optional:
#: XStream and Jettison render a statistics reply (a MapMessage) as JSON to a STOMP client
#: (``transformation: jms-map-json``, :mod:`inlet.broker_stats`). Debian packages them apart
#: (libxstream-java, libjettison-java; scripts/setup.sh installs them).
OPTIONAL_JARS = ("/usr/share/java/xstream.jar", "/usr/share/java/jettison.jar", "/usr/share/java/xpp3.jar")


def _extra_classpath() -> list[str]:
    present = [j for j in OPTIONAL_JARS if Path(j).is_file()]
    return [f"-Dactivemq.classpath={':'.join(present)}"] if present else []


class ActiveMQ(Service):
    name = "activemq"
    port_setting = "[broker] stomp_port / INLET_BROKER__STOMP_PORT"

    @property
    def port(self) -> int:
        return self.settings.broker.stomp_port

    @property
    def endpoint(self) -> str:
        return f"stomp://127.0.0.1:{self.port}"

    @property
    def base(self) -> Path:
        return self.paths.data / "activemq"

    def check(self) -> None:
        super().check()
        from inlet.lake.ports import ensure_free

        ensure_free(self.settings.broker.openwire_port, self.name, "[broker] openwire_port")

    def prepare(self) -> None:
        b = self.settings.broker
        conf = self.base / "conf"
        for d in (conf, self.base / "data", self.base / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        xml = BROKER_XML.format(
            data=quoteattr(str(self.base / "data")),
            kahadb=quoteattr(str(self.base / "data" / "kahadb")),
            user=quoteattr(b.username),
            password=quoteattr(b.password),
            hermes_user=quoteattr(b.hermes_username),
            hermes_password=quoteattr(b.hermes_password),
            reader_user=quoteattr(b.reader_username),
            reader_password=quoteattr(b.reader_password),
            openwire=b.openwire_port,
            stomp=b.stomp_port,
            composites=self.composite_topics(),
            queues=self.listener_queues(),
            authorization=self.authorization_entries(),
        )
        _write_private(conf / "activemq.xml", xml)
        (conf / "log4j2.properties").write_text(LOG4J)

    def composite_topics(self) -> str:
        """XML forwarding the Rucio and inlet topics into the listener's queues."""
        b, listener = self.settings.broker, self.settings.listener
        pairs = ((b.rucio_topic, listener.rucio_queue), (b.inlet_topic, listener.inlet_queue))
        return "\n".join(
            f'      <compositeTopic name={quoteattr(_physical(topic))} forwardOnly="false"><forwardTo>'
            f"<queue physicalName={quoteattr(_physical(queue))}/></forwardTo></compositeTopic>"
            for topic, queue in pairs
        )

    def listener_queues(self) -> str:
        """XML declaring the queues the composite topics forward into."""
        listener = self.settings.listener
        return "\n".join(
            f"      <queue physicalName={quoteattr(_physical(q))}/>"
            for q in (listener.rucio_queue, listener.inlet_queue)
        )

    def authorization_entries(self) -> str:
        """XML of who may read, write (publish) and create ("admin") which destination.

        ActiveMQ grants the union of every entry that matches a destination, so no catch-all
        topic entry may grant a write: each topic is named.
        """
        b = self.settings.broker
        rows = (
            ("queue", ">", "inlet", "inlet", "inlet"),
            ("topic", _physical(b.rucio_topic), "inlet,readers", "hermes", "inlet,readers,hermes"),
            ("topic", _physical(b.inlet_topic), "inlet,readers", "inlet", "inlet,readers"),
            ("topic", "ActiveMQ.Advisory.>", "inlet,hermes,readers", "inlet,hermes,readers", "inlet,hermes,readers"),
        )
        return "\n".join(
            f"        <authorizationEntry {kind}={quoteattr(name)} read={quoteattr(read)} write={quoteattr(write)} "
            f"admin={quoteattr(admin)}/>"
            for kind, name, read, write, admin in rows
        )

    def argv(self) -> list[str]:
        home = self.settings.lake.activemq_home
        jar = home / "bin" / "activemq.jar"
        if not jar.is_file():
            raise LakeError(
                f"activemq: {jar} not found (ActiveMQ is not installed)",
                "run scripts/setup.sh (apt-get install activemq), or set [lake] activemq_home",
            )
        java = require_executable(
            self.settings.lake.java, self.name, "run scripts/setup.sh (installs default-jre-headless)"
        )
        base = self.base
        return [
            java,
            *JVM_MEMORY,
            f"-Dactivemq.home={home}",
            f"-Dactivemq.base={base}",
            f"-Dactivemq.conf={base / 'conf'}",
            f"-Dactivemq.data={base / 'data'}",
            f"-Djava.io.tmpdir={base / 'tmp'}",
            f"-Dlog4j2.configurationFile={base / 'conf' / 'log4j2.properties'}",
            *_extra_classpath(),
            "-jar",
            str(jar),
            "start",
            f"xbean:file:{base / 'conf' / 'activemq.xml'}",
        ]

    def ready(self) -> bool:
        """A real STOMP CONNECT with the lake's credentials, not just an open port."""
        b = self.settings.broker
        frame = f"CONNECT\naccept-version:1.2\nhost:localhost\nlogin:{b.username}\npasscode:{b.password}\n\n\x00"
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(frame.encode())
                reply = sock.recv(4096)
                sock.sendall(b"DISCONNECT\n\n\x00")
            return reply.startswith(b"CONNECTED")
        except OSError:
            return False


def _write_private(path: Path, text: str) -> None:
    """Write a file that holds passwords: 0600 from its creation, also when it already existed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _physical(destination: str) -> str:
    """The broker's name of a STOMP destination (/topic/x or /queue/x → x)."""
    for prefix in ("/topic/", "/queue/"):
        if destination.startswith(prefix):
            return destination[len(prefix) :]
    return destination
