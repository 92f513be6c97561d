-- Notice and takedown: tickets, the notices and match evidence behind them, decisions,
-- statements of reasons and the per-list policy. Case records only: never media, never a
-- list entry's hash. The enums mirror takedown.workflow.
CREATE TYPE ticket_state AS ENUM (
    'open', 'in_review', 'actioned', 'dismissed', 'reported', 'appealed', 'reinstated', 'upheld', 'closed'
);
CREATE TYPE ticket_source AS ENUM ('hash_match', 'user_report', 'trusted_flagger', 'hotline', 'authority_order');
CREATE TYPE platform_action AS ENUM ('remove', 'block', 'restrict', 'reinstate');

CREATE TABLE tickets (
    id                   uuid          PRIMARY KEY,
    content_id           text          NOT NULL,
    content_url          text,                      -- purged with the evidence
    source               ticket_source NOT NULL,    -- the first source; later notices are in ticket_notices
    state                ticket_state  NOT NULL DEFAULT 'open',
    priority             smallint      NOT NULL CHECK (priority BETWEEN 1 AND 4),
    received_at          timestamptz   NOT NULL DEFAULT now(),
    due_at               timestamptz   NOT NULL,
    automated_detection  boolean       NOT NULL,
    -- The lease of the reviewer working the ticket: claims skip leased tickets until the lease expires.
    lease_key_id         bigint        REFERENCES api_keys (id),
    lease_key_prefix     text,
    lease_expires_at     timestamptz,
    -- The restriction currently in force (set by actioned/upheld, cleared by reinstated) and who decided it;
    -- an appeal must be decided by another key than decided_key_id.
    action               platform_action,
    decided_at           timestamptz,
    decided_key_id       bigint        REFERENCES api_keys (id),
    first_action_at      timestamptz,
    sightings            integer       NOT NULL DEFAULT 0,  -- scans/lookups that matched this content
    notices              integer       NOT NULL DEFAULT 0,  -- notices received about this content
    legal_hold           boolean       NOT NULL DEFAULT false,
    legal_hold_reason    text,
    preserve_until       timestamptz,               -- evidence is purged after this, unless on legal hold
    evidence_purged_at   timestamptz,
    updated_at           timestamptz   NOT NULL DEFAULT now()
);

-- One live ticket per content item: repeated uploads and notices attach to it. A dismissed,
-- reinstated or closed ticket is finished; new reports about its content open a new ticket.
CREATE UNIQUE INDEX tickets_one_live_per_content ON tickets (content_id)
    WHERE state NOT IN ('dismissed', 'reinstated', 'closed');
CREATE INDEX tickets_queue ON tickets (priority, due_at) WHERE state IN ('open', 'in_review', 'appealed');
CREATE INDEX tickets_state ON tickets (state, received_at);
CREATE INDEX tickets_preserve ON tickets (preserve_until) WHERE evidence_purged_at IS NULL;

-- Detection evidence: which list entry matched, by which tool and version, at what distance.
CREATE TABLE ticket_evidence (
    id               bigserial   PRIMARY KEY,
    ticket_id        uuid        NOT NULL REFERENCES tickets (id),
    scan_id          uuid        NOT NULL,
    hashset          text        NOT NULL,
    hashset_version  integer     NOT NULL,
    entry_id         text        NOT NULL,
    tool             text        NOT NULL,
    tool_version     text        NOT NULL,
    distance         integer     NOT NULL,
    api_key_id       bigint      REFERENCES api_keys (id),
    observed_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ticket_evidence_ticket ON ticket_evidence (ticket_id);

-- Notices (DSA Art 16, hotline notices, authority orders). Notifier contact is optional: CSAM
-- notices may be anonymous. Contact and explanation are purged with the evidence.
CREATE TABLE ticket_notices (
    id                   bigserial     PRIMARY KEY,
    ticket_id            uuid          NOT NULL REFERENCES tickets (id),
    source               ticket_source NOT NULL,
    content_url          text,
    explanation          text,
    content_type         text,
    notifier_name        text,
    notifier_email       text,
    authority            text,
    authority_reference  text,
    legal_deadline       timestamptz,
    bona_fide            boolean       NOT NULL DEFAULT false,
    api_key_id           bigint        REFERENCES api_keys (id),
    received_at          timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX ticket_notices_ticket ON ticket_notices (ticket_id);

-- Every decision (actioned, dismissed, reported, appealed, reinstated, upheld, closed): who, when,
-- from and to, which action and why, and whether detection and decision were automated. Claims
-- and releases are in the audit log only. Transparency figures (time to action, automated share,
-- complaints and reversals, reports filed) are computed from here and from tickets.
CREATE TABLE ticket_decisions (
    id                   bigserial       PRIMARY KEY,
    ticket_id            uuid            NOT NULL REFERENCES tickets (id),
    from_state           ticket_state    NOT NULL,
    to_state             ticket_state    NOT NULL,
    action               platform_action,
    ground               text,
    legal_ground         text,
    explanation          text,
    reported_to          text,           -- for 'reported': the hotline or authority, and its reference
    report_reference     text,
    automated_detection  boolean         NOT NULL,
    automated_decision   boolean         NOT NULL,
    actor_key_id         bigint          REFERENCES api_keys (id),
    actor                text            NOT NULL,   -- key prefix, or 'system' for automated decisions
    decided_at           timestamptz     NOT NULL DEFAULT now()
);
CREATE INDEX ticket_decisions_ticket ON ticket_decisions (ticket_id, id);

-- Statements of reasons (DSA Art 17), written in the same transaction as the restriction.
CREATE TABLE ticket_statements (
    id          bigserial   PRIMARY KEY,
    ticket_id   uuid        NOT NULL REFERENCES tickets (id),
    body        jsonb       NOT NULL,
    issued_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ticket_statements_ticket ON ticket_statements (ticket_id, id);

-- Policy per list and tool ('*' = any tool): auto_action lets a match against known, verified
-- material be actioned without waiting for a reviewer. Anything without a row waits for a person.
CREATE TABLE takedown_policies (
    hashset      text            NOT NULL,
    tool         text            NOT NULL DEFAULT '*',
    auto_action  boolean         NOT NULL DEFAULT false,
    action       platform_action NOT NULL DEFAULT 'remove' CHECK (action <> 'reinstate'),
    updated_at   timestamptz     NOT NULL DEFAULT now(),
    PRIMARY KEY (hashset, tool)
);
