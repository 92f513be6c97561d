-- The kernel's named queries for staff accounts and console sessions.

-- name: insert_user
INSERT INTO staff_users (email, key_id, password_hash) VALUES ($1, $2, $3)
ON CONFLICT (email) DO NOTHING RETURNING id;

-- name: user_by_email
SELECT u.id, u.email, u.key_id, k.key_prefix, k.role::text AS role, u.password_hash, u.failed_count, u.locked_until,
       u.disabled_at, u.previews_off, u.created_at, k.revoked_at IS NOT NULL AS key_revoked,
       array(SELECT t.tenant_id FROM api_key_tenants t WHERE t.key_id = k.id) AS tenants,
       array(SELECT n.name FROM api_key_tenants t JOIN tenants n ON n.id = t.tenant_id WHERE t.key_id = k.id ORDER BY n.name) AS tenant_names,
       now() AS now
FROM staff_users u JOIN api_keys k ON k.id = u.key_id WHERE u.email = $1;

-- name: list_users
SELECT u.id, u.email, u.key_id, k.key_prefix, k.role::text AS role, u.password_hash, u.failed_count, u.locked_until,
       u.disabled_at, u.previews_off, u.created_at, k.revoked_at IS NOT NULL AS key_revoked,
       array(SELECT t.tenant_id FROM api_key_tenants t WHERE t.key_id = k.id) AS tenants,
       array(SELECT n.name FROM api_key_tenants t JOIN tenants n ON n.id = t.tenant_id WHERE t.key_id = k.id ORDER BY n.name) AS tenant_names,
       now() AS now
FROM staff_users u JOIN api_keys k ON k.id = u.key_id ORDER BY u.email;

-- name: names_of_keys
SELECT u.key_id, u.email FROM staff_users u WHERE u.key_id = ANY($1::bigint[]);

-- name: lock_user
SELECT id FROM staff_users WHERE id = $1 FOR UPDATE;

-- name: lock_user_by_email
SELECT id FROM staff_users WHERE email = $1 FOR UPDATE;

-- name: record_failure
-- $2: failures in a row that lock the account; $3: minutes it stays locked.
UPDATE staff_users
SET failed_count = CASE WHEN failed_count + 1 >= $2 THEN 0 ELSE failed_count + 1 END,
    locked_until = CASE WHEN failed_count + 1 >= $2 THEN now() + make_interval(secs => $3 * 60) ELSE locked_until END
WHERE id = $1
RETURNING locked_until > now() AS locked, locked_until;

-- name: record_success
UPDATE staff_users SET failed_count = 0, locked_until = NULL WHERE id = $1;

-- name: set_password
UPDATE staff_users SET password_hash = $2, password_changed_at = now(), failed_count = 0, locked_until = NULL
WHERE id = $1;

-- name: disable_user
UPDATE staff_users SET disabled_at = now() WHERE id = $1 AND disabled_at IS NULL RETURNING key_id;

-- name: revoke_backing_key
UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL;

-- name: set_previews_off
UPDATE staff_users SET previews_off = $2 WHERE id = $1;

-- name: insert_session
INSERT INTO staff_sessions (token_hash, user_id, csrf_token, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4 * 3600));

-- name: touch_session
-- The session of a cookie, if it is still good: not revoked, not idle past $2 minutes, not past
-- its absolute end, its account enabled and its key unrevoked. Touching it starts a new review
-- stretch after a pause of at least $3 minutes.
UPDATE staff_sessions s
SET last_seen_at = now(),
    stretch_started_at = CASE WHEN s.last_seen_at < now() - make_interval(secs => $3 * 60) THEN now() ELSE s.stretch_started_at END
FROM staff_users u JOIN api_keys k ON k.id = u.key_id
WHERE s.token_hash = $1 AND u.id = s.user_id
  AND s.revoked_at IS NULL AND s.expires_at > now() AND s.last_seen_at > now() - make_interval(secs => $2 * 60)
  AND u.disabled_at IS NULL AND k.revoked_at IS NULL
RETURNING u.id AS user_id, u.email, u.key_id, k.key_prefix, k.role::text AS role, u.previews_off, s.csrf_token,
          s.created_at, s.expires_at, s.stretch_started_at, now() AS now,
          array(SELECT t.tenant_id FROM api_key_tenants t WHERE t.key_id = k.id) AS tenants;

-- name: revoke_session
UPDATE staff_sessions SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL RETURNING user_id;

-- name: revoke_user_sessions
UPDATE staff_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL;

-- name: purge_sessions
-- Sessions that ended more than a day ago (revoked, past their end, or idle past $1 minutes) are
-- deleted; sign-ins and sign-outs are in the audit log.
DELETE FROM staff_sessions
WHERE revoked_at < now() - interval '1 day' OR expires_at < now() - interval '1 day'
   OR last_seen_at < now() - make_interval(secs => $1 * 60) - interval '1 day';
