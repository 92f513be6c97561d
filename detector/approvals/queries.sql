-- Every read of an approval goes through the same guarded column list (the view tool_approvals_read,
-- migration 0071, and the two RETURNING lists below, which cannot read a view): a stored moment outside the
-- timestamp rule (kernel.api: 1970-01-01 to before 9999-01-01; +-infinity, year 1, year 10000, BC) is
-- read as NULL, never decoded, so one bad row cannot make the driver (or a comparison) fail the whole
-- read. detector.approvals.pg marks such an approval unreadable and the policy fails closed for its tool.

-- name: list_approvals
SELECT * FROM tool_approvals_read WHERE ($1::text IS NULL OR tool = $1) ORDER BY id;

-- name: get_approval
SELECT * FROM tool_approvals_read WHERE id = $1;

-- name: lock_approval
SELECT * FROM tool_approvals_read WHERE id = $1 FOR UPDATE;

-- name: insert_approval
INSERT INTO tool_approvals (tool, versions, authority, jurisdiction, instrument, scope, status, valid_from, valid_until,
                            accuracy_statement, accuracy_reference, evidence_url)
VALUES ($1, $2, $3, $4, $5, $6, $7::tool_approval_status, coalesce($8, now()), $9, $10, $11, $12)
RETURNING id, tool, versions, authority, jurisdiction, instrument, scope, status,
       CASE WHEN valid_from >= '1970-01-01 00:00:00+00' AND valid_from < '9999-01-01 00:00:00+00' THEN valid_from END AS valid_from,
       CASE WHEN valid_until >= '1970-01-01 00:00:00+00' AND valid_until < '9999-01-01 00:00:00+00' THEN valid_until END AS valid_until,
       valid_until IS NOT NULL AS has_until,
       accuracy_statement, accuracy_reference, evidence_url,
       least(greatest(created_at, '1970-01-01 00:00:00+00'), '9999-01-01 00:00:00+00') AS created_at,
       least(greatest(updated_at, '1970-01-01 00:00:00+00'), '9999-01-01 00:00:00+00') AS updated_at;

-- name: set_approval_status
UPDATE tool_approvals SET status = $2::tool_approval_status, updated_at = now() WHERE id = $1
RETURNING id, tool, versions, authority, jurisdiction, instrument, scope, status,
       CASE WHEN valid_from >= '1970-01-01 00:00:00+00' AND valid_from < '9999-01-01 00:00:00+00' THEN valid_from END AS valid_from,
       CASE WHEN valid_until >= '1970-01-01 00:00:00+00' AND valid_until < '9999-01-01 00:00:00+00' THEN valid_until END AS valid_until,
       valid_until IS NOT NULL AS has_until,
       accuracy_statement, accuracy_reference, evidence_url,
       least(greatest(created_at, '1970-01-01 00:00:00+00'), '9999-01-01 00:00:00+00') AS created_at,
       least(greatest(updated_at, '1970-01-01 00:00:00+00'), '9999-01-01 00:00:00+00') AS updated_at;

-- name: standing_allowances
SELECT id, tool, versions, reason, allowed_by,
       least(greatest(allowed_at, '1970-01-01 00:00:00+00'), '9999-01-01 00:00:00+00') AS allowed_at
FROM tool_local_allowances WHERE revoked_at IS NULL ORDER BY id;

-- name: insert_allowance
INSERT INTO tool_local_allowances (tool, versions, reason, allowed_by) VALUES ($1, $2, $3, $4)
ON CONFLICT (tool) WHERE revoked_at IS NULL DO NOTHING
RETURNING *;

-- name: revoke_allowance
UPDATE tool_local_allowances SET revoked_at = now(), revoked_by = $2
WHERE tool = $1 AND revoked_at IS NULL
RETURNING *;

-- name: insert_event
INSERT INTO tool_approval_events (actor, action, tool, approval_id, allowance_id, before, after)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)
RETURNING id;

-- name: list_events
SELECT id, at, actor, action, tool, approval_id, allowance_id, before::text AS before, after::text AS after
FROM tool_approval_events
WHERE ($1::text IS NULL OR tool = $1)
ORDER BY id DESC
LIMIT $2;
