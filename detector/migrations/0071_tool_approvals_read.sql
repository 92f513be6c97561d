-- Approvals as every read sees them: a stored moment outside the timestamp rule (kernel.api: 1970-01-01
-- to before 9999-01-01) reads as NULL (validity) or is clamped (bookkeeping), so one bad row can never
-- make the driver fail a whole read. detector/approvals/queries.sql reads through it.
CREATE VIEW tool_approvals_read AS
SELECT id, tool, versions, authority, jurisdiction, instrument, scope, status,
       CASE WHEN valid_from >= '1970-01-01 00:00:00+00' AND valid_from < '9999-01-01 00:00:00+00' THEN valid_from END AS valid_from,
       CASE WHEN valid_until >= '1970-01-01 00:00:00+00' AND valid_until < '9999-01-01 00:00:00+00' THEN valid_until END AS valid_until,
       valid_until IS NOT NULL AS has_until,
       accuracy_statement, accuracy_reference, evidence_url,
       least(greatest(created_at, '1970-01-01 00:00:00+00'), '9999-01-01 00:00:00+00') AS created_at,
       least(greatest(updated_at, '1970-01-01 00:00:00+00'), '9999-01-01 00:00:00+00') AS updated_at
FROM tool_approvals;
