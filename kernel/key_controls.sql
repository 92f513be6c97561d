-- The kernel's named queries for key controls (kernel/keycontrols.py).

-- name: controls_of
SELECT distances_granted, rate_per_s, burst, suspended_at, suspended_reason FROM key_controls WHERE key_id = $1;

-- name: ensure_controls
INSERT INTO key_controls (key_id) VALUES ($1) ON CONFLICT (key_id) DO NOTHING;

-- name: lock_controls
SELECT distances_granted, rate_per_s, burst, suspended_at, suspended_by, suspended_reason
FROM key_controls WHERE key_id = $1 FOR UPDATE;

-- name: set_distances
UPDATE key_controls SET distances_granted = $2, updated_at = now() WHERE key_id = $1;

-- name: set_rate
UPDATE key_controls SET rate_per_s = $2, burst = $3, updated_at = now() WHERE key_id = $1;

-- name: suspend_key
UPDATE key_controls SET suspended_at = now(), suspended_by = $2, suspended_reason = $3, updated_at = now()
WHERE key_id = $1 AND suspended_at IS NULL RETURNING suspended_at;

-- name: release_key
UPDATE key_controls SET suspended_at = NULL, suspended_by = NULL, suspended_reason = NULL, updated_at = now()
WHERE key_id = $1 AND suspended_at IS NOT NULL RETURNING updated_at;

-- name: key_by_prefix
SELECT id, key_prefix, role::text AS role FROM api_keys WHERE key_prefix = $1 AND revoked_at IS NULL;

-- name: suspended_keys
SELECT k.key_prefix, c.suspended_at, c.suspended_by, c.suspended_reason
FROM key_controls c JOIN api_keys k ON k.id = c.key_id
WHERE c.suspended_at IS NOT NULL ORDER BY c.suspended_at;

-- name: prefix_of
SELECT key_prefix FROM api_keys WHERE id = $1;
