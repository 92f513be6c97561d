-- The outbox of statements of reasons bound for the DSA Transparency Database (Art 24(5)). A row is
-- written in the transaction that issues the statement, so every statement is on its way exactly
-- when it exists. ``body`` is the database's own JSON for it, fixed at issue time and sent as is on
-- every attempt; ``puid`` is our identifier there, which makes a resend after a lost answer
-- harmless (the database refuses a puid it holds, and we ask it before resending). No personal
-- data: the statement's wire form carries none (the database forbids it).
CREATE TYPE dsa_submission_state AS ENUM ('pending', 'submitted', 'failed');

CREATE TABLE dsa_submissions (
    id               bigserial            PRIMARY KEY,
    statement_id     bigint               NOT NULL UNIQUE REFERENCES ticket_statements (id),
    ticket_id        uuid                 NOT NULL REFERENCES tickets (id),
    puid             text                 NOT NULL UNIQUE,
    body             jsonb                NOT NULL,
    state            dsa_submission_state NOT NULL DEFAULT 'pending',
    attempts         integer              NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz          NOT NULL DEFAULT now(),
    last_status      integer,
    last_error       text,
    errors           jsonb,                -- the database's (or our schema's) validation errors for a rejected one
    db_uuid          text,                 -- the database's id for the statement, once accepted
    created_at       timestamptz          NOT NULL DEFAULT now(),
    submitted_at     timestamptz
);
CREATE INDEX dsa_submissions_due ON dsa_submissions (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX dsa_submissions_ticket ON dsa_submissions (ticket_id);
