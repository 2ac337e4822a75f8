-- Events: the transactional outbox a service's relay publishes to NATS JetStream,
-- and the event ids its consumers have handled (each in the tx of its effect).

CREATE TABLE outbox (
    -- seq orders publishing; id is the event's global identity (ce-id, Nats-Msg-Id).
    seq          bigserial PRIMARY KEY,
    id           uuid NOT NULL UNIQUE,
    subject      text NOT NULL,
    type         text NOT NULL,
    source       text NOT NULL,
    data         bytea NOT NULL,
    -- Trace context of the transaction that enqueued the event (traceparent, tracestate).
    headers      jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;

CREATE TABLE handled_events (
    consumer   text NOT NULL,
    event_id   text NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
