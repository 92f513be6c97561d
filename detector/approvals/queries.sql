-- name: list_approvals
SELECT * FROM tool_approvals WHERE ($1::text IS NULL OR tool = $1) ORDER BY id;

-- name: get_approval
SELECT * FROM tool_approvals WHERE id = $1;

-- name: lock_approval
SELECT * FROM tool_approvals WHERE id = $1 FOR UPDATE;

-- name: insert_approval
INSERT INTO tool_approvals (tool, versions, authority, jurisdiction, instrument, scope, status, valid_from, valid_until,
                            accuracy_statement, accuracy_reference, evidence_url)
VALUES ($1, $2, $3, $4, $5, $6, $7::tool_approval_status, coalesce($8, now()), $9, $10, $11, $12)
RETURNING *;

-- name: set_approval_status
UPDATE tool_approvals SET status = $2::tool_approval_status, updated_at = now() WHERE id = $1 RETURNING *;

-- name: standing_allowances
SELECT * FROM tool_local_allowances WHERE revoked_at IS NULL ORDER BY id;

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
