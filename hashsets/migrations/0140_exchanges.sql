-- Hash-sharing sources (issue 14): where a list arrives from by itself, how far it has been read,
-- what could not be read, and the verdicts waiting to be sent back. Credentials are never stored:
-- a secret setting holds only where to read it (env:VARIABLE or file:PATH).
CREATE TABLE exchange_sources (
    id               serial PRIMARY KEY,
    name             text        NOT NULL UNIQUE,
    kind             text        NOT NULL,
    config           jsonb       NOT NULL DEFAULT '{}',
    members          text[],                 -- only entries from these members/issuers (NULL: all)
    interval_s       double precision NOT NULL,
    upvotes          boolean     NOT NULL DEFAULT false,
    paused           boolean     NOT NULL DEFAULT false,
    checkpoint       jsonb,
    next_due_at      timestamptz NOT NULL DEFAULT now(),
    last_page_at     timestamptz,
    last_success_at  timestamptz,
    source_time      timestamptz,            -- everything the source held before this has been read
    last_error       text,
    last_error_kind  text,
    last_error_at    timestamptz,
    entries_fetched  bigint      NOT NULL DEFAULT 0,
    pages_applied    bigint      NOT NULL DEFAULT 0,
    created_by       text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- The lists a source feeds, one per hash type, and the version the fetcher last made current:
-- a list changed by anything else (a rollback, a hand import) stops the fetch instead of being overwritten.
CREATE TABLE exchange_lists (
    source_id   integer NOT NULL REFERENCES exchange_sources (id) ON DELETE CASCADE,
    tool        text    NOT NULL,
    hashset_id  integer NOT NULL REFERENCES hashsets (id),
    version_id  integer REFERENCES hashset_versions (id),
    PRIMARY KEY (source_id, tool)
);

-- Each source entry's state as last applied (last writer wins on the source's timestamp), and the
-- list rows that hold it now, so a change or a deletion retracts exactly those rows.
CREATE TABLE exchange_entries (
    source_id   integer     NOT NULL REFERENCES exchange_sources (id) ON DELETE CASCADE,
    entry_id    text        NOT NULL,
    updated_at  timestamptz,
    deleted     boolean     NOT NULL DEFAULT false,
    rows        jsonb       NOT NULL DEFAULT '{}',   -- tool -> hash_entries.id
    digests     jsonb       NOT NULL DEFAULT '{}',   -- tool -> md5 of hash and category: was it changed?
    PRIMARY KEY (source_id, entry_id)
);

CREATE TABLE exchange_quarantine (
    id           bigserial PRIMARY KEY,
    source_id    integer     NOT NULL REFERENCES exchange_sources (id) ON DELETE CASCADE,
    scope        text        NOT NULL CHECK (scope IN ('page', 'entry')),
    position     text        NOT NULL,
    entry_id     text,
    reason       text        NOT NULL,
    first_at     timestamptz NOT NULL DEFAULT now(),
    last_at      timestamptz NOT NULL DEFAULT now(),
    attempts     integer     NOT NULL DEFAULT 1,
    resolved_at  timestamptz
);
CREATE UNIQUE INDEX exchange_quarantine_open ON exchange_quarantine (source_id, scope, position) WHERE resolved_at IS NULL;

-- Reviewers' verdicts on matches of a source's entries, delivered by the fetcher's loop with retries.
CREATE TABLE exchange_feedback (
    id           bigserial PRIMARY KEY,
    source_id    integer     NOT NULL REFERENCES exchange_sources (id) ON DELETE CASCADE,
    entry_id     text        NOT NULL,
    tool         text        NOT NULL,
    vote         text        NOT NULL CHECK (vote IN ('up', 'down')),
    reason       text        NOT NULL DEFAULT '',
    ticket       text        NOT NULL DEFAULT '',
    actor        text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    attempts     integer     NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    failed_at    timestamptz,
    last_error   text,
    UNIQUE (source_id, entry_id, tool, vote, ticket)
);
CREATE INDEX exchange_feedback_due ON exchange_feedback (next_at) WHERE sent_at IS NULL AND failed_at IS NULL;
