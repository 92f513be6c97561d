-- The regulator-approved tool registry: approvals per authority and jurisdiction, local
-- allowances, and an append-only history of every change to either. A running detector
-- decides from these which installed tools may scan (detector/tools/policy.py).
CREATE TYPE tool_approval_status AS ENUM ('approved', 'recommended', 'permitted', 'proposed', 'suspended', 'withdrawn');

CREATE TABLE tool_approvals (
    id                  bigserial PRIMARY KEY,
    tool                text                 NOT NULL CHECK (tool <> ''),
    versions            text                 NOT NULL DEFAULT '*',   -- '*' or a PEP 440 range, e.g. '>=0.2,<0.3'
    authority           text                 NOT NULL CHECK (authority <> ''),
    jurisdiction        text                 NOT NULL CHECK (jurisdiction <> '' AND jurisdiction = upper(jurisdiction)),
    instrument          text                 NOT NULL CHECK (instrument <> ''),
    scope               text[]               NOT NULL DEFAULT '{}',  -- content categories, e.g. csam_known
    status              tool_approval_status NOT NULL,
    valid_from          timestamptz          NOT NULL DEFAULT now(),
    valid_until         timestamptz,
    accuracy_statement  text                 NOT NULL DEFAULT '',
    accuracy_reference  text                 NOT NULL DEFAULT '',
    evidence_url        text                 NOT NULL DEFAULT '',
    created_at          timestamptz          NOT NULL DEFAULT now(),
    updated_at          timestamptz          NOT NULL DEFAULT now(),
    CHECK (valid_until IS NULL OR valid_until > valid_from)
);

CREATE INDEX tool_approvals_tool ON tool_approvals (tool);

-- An admin's explicit decision to scan with a tool no approval covers. Revoking keeps the row.
CREATE TABLE tool_local_allowances (
    id          bigserial PRIMARY KEY,
    tool        text        NOT NULL CHECK (tool <> ''),
    versions    text        NOT NULL DEFAULT '*',
    reason      text        NOT NULL CHECK (reason <> ''),
    allowed_by  text        NOT NULL CHECK (allowed_by <> ''),
    allowed_at  timestamptz NOT NULL DEFAULT now(),
    revoked_by  text,
    revoked_at  timestamptz
);

-- At most one standing allowance per tool.
CREATE UNIQUE INDEX tool_local_allowances_one_standing ON tool_local_allowances (tool) WHERE revoked_at IS NULL;

-- Every change, with who, when, and the record before and after (JSON). Append-only; meant to
-- be folded into the hash-chained audit log.
CREATE TABLE tool_approval_events (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    actor         text        NOT NULL CHECK (actor <> ''),
    action        text        NOT NULL,
    tool          text        NOT NULL,
    approval_id   bigint      REFERENCES tool_approvals (id),
    allowance_id  bigint      REFERENCES tool_local_allowances (id),
    before        jsonb,
    after         jsonb
);

CREATE INDEX tool_approval_events_tool ON tool_approval_events (tool, id);

CREATE FUNCTION refuse_tool_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'tool_approval_events is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER tool_approval_events_append_only BEFORE UPDATE OR DELETE ON tool_approval_events
    FOR EACH ROW EXECUTE FUNCTION refuse_tool_event_change();
CREATE TRIGGER tool_approval_events_no_truncate BEFORE TRUNCATE ON tool_approval_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_tool_event_change();

-- Approvals decide what scans: wake every replica's reloader on any change, on the channel it
-- already listens to for hash lists (detector/reload.py).
CREATE FUNCTION notify_tools_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hashguard_hashsets', 'tools');
    RETURN NULL;
END $$;

CREATE TRIGGER tool_approvals_changed AFTER INSERT OR UPDATE OR DELETE ON tool_approvals
    FOR EACH STATEMENT EXECUTE FUNCTION notify_tools_changed();
CREATE TRIGGER tool_local_allowances_changed AFTER INSERT OR UPDATE OR DELETE ON tool_local_allowances
    FOR EACH STATEMENT EXECUTE FUNCTION notify_tools_changed();

-- Provenance: the approval each match ran under (NULL when the tool ran under a local
-- allowance, named in local_allowance_id), and the policy's reason.
ALTER TABLE scan_matches
    ADD COLUMN approval_id         bigint REFERENCES tool_approvals (id),
    ADD COLUMN local_allowance_id  bigint REFERENCES tool_local_allowances (id),
    ADD COLUMN approval_reason     text;
