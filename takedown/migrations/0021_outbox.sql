-- The transactional outbox of platform actions. A row is written in the same transaction as the
-- decision that calls for it, so a decision can never exist without its action (or the reverse).
-- The delivery loop claims due rows with FOR UPDATE SKIP LOCKED and pushes next_attempt_at
-- forward before sending, so a process that dies mid-send leaves the row to be retried, with the
-- same idempotency key, by whichever replica runs next.
CREATE TYPE outbox_state AS ENUM ('pending', 'delivered', 'failed');

CREATE TABLE takedown_outbox (
    id               bigserial       PRIMARY KEY,
    ticket_id        uuid            NOT NULL REFERENCES tickets (id),
    idempotency_key  uuid            NOT NULL UNIQUE,
    action           platform_action NOT NULL,
    body             text            NOT NULL,  -- the exact bytes sent (and signed) on every attempt
    state            outbox_state    NOT NULL DEFAULT 'pending',
    attempts         integer         NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz     NOT NULL DEFAULT now(),
    last_status      integer,
    last_error       text,
    created_at       timestamptz     NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
CREATE INDEX takedown_outbox_due ON takedown_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX takedown_outbox_ticket ON takedown_outbox (ticket_id, id);
