-- The kernel's named queries: API keys and the audit log.

-- name: insert_key
INSERT INTO api_keys (key_prefix, key_hash, role, label, tenant_id) VALUES ($1, $2, $3::api_role, $4, $5) RETURNING id;

-- name: limit_key_tenants
INSERT INTO api_key_tenants (key_id, tenant_id) SELECT $1, unnest($2::bigint[]);

-- name: find_key
SELECT k.id, k.key_prefix, k.role::text AS role, k.tenant_id,
       array(SELECT t.tenant_id FROM api_key_tenants t WHERE t.key_id = k.id) AS tenants
FROM api_keys k WHERE k.key_hash = $1 AND k.revoked_at IS NULL;

-- name: list_keys
SELECT k.id, k.key_prefix, k.role::text AS role, k.label, k.created_at, k.revoked_at,
       (SELECT name FROM tenants WHERE id = k.tenant_id) AS tenant,
       array(SELECT t.name FROM api_key_tenants l JOIN tenants t ON t.id = l.tenant_id WHERE l.key_id = k.id ORDER BY t.name) AS tenants
FROM api_keys k ORDER BY k.id;

-- name: insert_tenant
INSERT INTO tenants (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id, name, created_at;

-- name: list_tenants
SELECT id, name, created_at FROM tenants ORDER BY id;

-- name: tenant_ids
SELECT id, name FROM tenants WHERE name = ANY($1::text[]);

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

-- name: insert_audit_many
INSERT INTO audit_log (seq, at, actor, action, subject, entry, prev_hash, hash)
SELECT e.seq, $1, e.actor, e.action, e.subject, e.entry, e.prev_hash, e.hash
FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8::bytea[])
     AS e (seq, actor, action, subject, entry, prev_hash, hash);

-- name: audit_all
SELECT seq, at, actor, action, subject, entry, prev_hash, hash FROM audit_log ORDER BY seq;

-- name: last_entry_for_subject
SELECT entry FROM audit_log WHERE subject = $1 ORDER BY seq DESC LIMIT 1;

-- name: audit_page
SELECT seq, at, actor, action, subject, entry, prev_hash, hash FROM audit_log
WHERE seq > $1 AND ($2::text IS NULL OR subject = $2)
ORDER BY seq LIMIT $3;

-- name: find_active_key_by_prefix
SELECT k.id, k.key_prefix, k.role::text AS role, k.tenant_id,
       array(SELECT t.tenant_id FROM api_key_tenants t WHERE t.key_id = k.id) AS tenants
FROM api_keys k WHERE k.key_prefix = $1 AND k.revoked_at IS NULL;

-- name: count_platform_tenants
-- How many tenants hold an active platform key: the most distinct sources a flood can come from.
SELECT count(DISTINCT tenant_id) FROM api_keys WHERE role = 'platform' AND revoked_at IS NULL;
