-- The audit trail: an append-only, hash-chained log of every change to a ticket, list, key or
-- setting. ``entry`` is the canonical JSON that was hashed (takedown.audit); the other columns
-- repeat its fields for querying, and `hashguard audit verify` checks they still agree.
-- hash = SHA-256(prev_hash || entry); the first entry's prev_hash is 32 zero bytes.
CREATE TABLE audit_log (
    seq        bigint      PRIMARY KEY,
    at         timestamptz NOT NULL,
    actor      text        NOT NULL,
    action     text        NOT NULL,
    subject    text        NOT NULL,
    entry      text        NOT NULL,
    prev_hash  bytea       NOT NULL,
    hash       bytea       NOT NULL UNIQUE
);
CREATE INDEX audit_log_subject ON audit_log (subject, seq);

-- Append-only: no role, not even the table's owner, may change or remove an entry. (A superuser
-- can still disable the trigger; that is what the chain is for: verify finds the edit.)
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
