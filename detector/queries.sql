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
