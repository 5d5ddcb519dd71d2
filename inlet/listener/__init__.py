"""``inlet listen``: durable, exactly-once-in-effect reactions to Rucio's and inlet's events.

Why queues fed by composite topics, not durable topic subscriptions
-------------------------------------------------------------------
hermes publishes to a *topic* (``/topic/rucio.events``); a topic keeps nothing for a
consumer that is not connected. ActiveMQ offers two ways to make it durable:

* a durable topic subscription (``client-id`` + ``activemq.subscriptionName``) keeps
  messages for one named subscriber, but only one connection may hold that subscription
  at a time: a second listener instance is refused or gets its own full copy of every
  event. Durability would cost us competing consumers. It also exists only from the
  moment a listener first subscribed.
* a composite topic (configured in the broker, see ``inlet.lake.services.activemq``)
  forwards every message published on the topic into a *queue* as well. The queue exists
  from broker start, so events published while no listener ever ran are kept; any number
  of listeners consume from it and the broker gives each message to exactly one of them;
  ``forwardOnly=false`` keeps the topic working for plain subscribers.

The second gives both properties the listener needs (nothing lost while no listener runs,
and competing consumers), so the lake's broker forwards
``[broker] rucio_topic`` → ``[listener] rucio_queue`` and ``[broker] inlet_topic`` →
``[listener] inlet_queue``. A site with its own broker adds the same two
``compositeTopic`` elements (``inlet.lake.services.activemq.ActiveMQ.composite_topics``).

Exactly-once effects on an at-least-once broker
-----------------------------------------------
Messages are consumed with ``ack: client-individual`` and acknowledged only after the
catalogue transaction holding the event's effects *and* its processed-events ledger row
has committed (``inlet.catalog.ledger``). A crash before the commit loses nothing (the
broker redelivers); a crash after the commit and before the ack makes the broker
redeliver an event whose ledger row exists, so its effects are skipped. Effects outside
the database (webhooks, events for the uploader) go through the catalogue's outbox and
carry idempotency keys.

The listener never imports the uploader: it tells it that a DAQ-disk copy may go by
publishing an inlet event on ``[broker] inlet_topic``.

Hostile input
-------------
A message is input from whoever holds a broker login, so:

* parsing is total (``inlet.listener.events.parse_message``): any body becomes an event or
  goes to the DLQ with the reason; an error escaping routing, a handler or the batch logic
  ends in retry, then the DLQ, never in the process's exit;
* a message that was being handled when its listener died comes back ``redelivered``;
  ActiveMQ's STOMP gives no count, so the listener requeues it carrying one
  (``inlet_deliveries``) and dead-letters it after ``[listener] max_deliveries``: a message
  that kills the process cannot crash-loop it;
* the broker has one login per role (``inlet.lake.services.activemq``): only hermes may
  publish Rucio's topic, only inlet's services inlet's topic and the queues;
* an event is a claim, not a fact: before an irreversible step (ON_S3/ON_TAPE, a
  reconstruction, a DAQ-disk release) the handlers ask Rucio.
"""
