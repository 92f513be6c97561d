-- The kernel's named queries: API keys and the audit log.

-- name: insert_key
INSERT INTO api_keys (key_prefix, key_hash, role, label) VALUES ($1, $2, $3::api_role, $4) RETURNING id;

-- name: find_key
SELECT id, key_prefix, role::text AS role FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL;

-- name: list_keys
SELECT id, key_prefix, role::text AS role, label, created_at, revoked_at FROM api_keys ORDER BY id;

-- name: revoke_key
UPDATE api_keys SET revoked_at = now() WHERE key_prefix = $1 AND revoked_at IS NULL RETURNING id;

-- name: ping
SELECT 1;

-- name: audit_lock
SELECT pg_advisory_xact_lock(7022575296345478503);

-- name: audit_head
SELECT seq, hash, clock_timestamp() AS now FROM audit_log ORDER BY seq DESC LIMIT 1;

-- name: clock
SELECT clock_timestamp();

-- name: insert_audit
INSERT INTO audit_log (seq, at, actor, action, subject, entry, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: audit_all
SELECT seq, at, actor, action, subject, entry, prev_hash, hash FROM audit_log ORDER BY seq;

-- name: last_entry_for_subject
SELECT entry FROM audit_log WHERE subject = $1 ORDER BY seq DESC LIMIT 1;

-- name: audit_page
SELECT seq, at, actor, action, subject, entry, prev_hash, hash FROM audit_log
WHERE seq > $1 AND ($2::text IS NULL OR subject = $2)
ORDER BY seq LIMIT $3;

-- name: find_active_key_by_prefix
SELECT id, key_prefix, role::text AS role FROM api_keys WHERE key_prefix = $1 AND revoked_at IS NULL;
