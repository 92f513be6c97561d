-- Named queries of hotline reports (takedown.reports.store). Tables: migration 0100.

-- name: report_for_ticket
SELECT r.*, r.status::text AS status_text FROM hotline_reports r WHERE ticket_id = $1 AND hotline = $2;

-- name: insert_report
INSERT INTO hotline_reports (id, ticket_id, hotline, requested_by, requested_key_id)
VALUES ($1, $2, $3, $4, $5)
RETURNING *, status::text AS status_text;

-- name: get_report
SELECT r.*, r.status::text AS status_text FROM hotline_reports r
JOIN tickets t ON t.id = r.ticket_id
WHERE r.id = $1 AND ($2::bigint[] IS NULL OR t.tenant_id = ANY($2::bigint[]));

-- name: ticket_reports
SELECT r.*, r.status::text AS status_text FROM hotline_reports r WHERE ticket_id = $1 ORDER BY created_at, id;

-- name: list_reports
SELECT r.*, r.status::text AS status_text FROM hotline_reports r
WHERE ($1::hotline_report_status[] IS NULL OR status = ANY($1::hotline_report_status[]))
ORDER BY created_at DESC, id
LIMIT $2;

-- name: report_calls
SELECT call, reference, http_status, code, request_id, error, at FROM hotline_report_calls WHERE report_id = $1 ORDER BY id;

-- name: claim_reports
-- Due reports nobody holds (or whose holder's lease ran out: that process died mid-flow), claimed
-- with a fresh lease token; SKIP LOCKED lets replicas claim side by side without ever sharing one.
UPDATE hotline_reports r
SET status = 'submitting', lease_token = gen_random_uuid(), lease_expires_at = now() + make_interval(secs => $2),
    attempts = attempts + 1, updated_at = now()
WHERE r.id IN (
    SELECT id FROM hotline_reports
    WHERE status IN ('queued', 'submitting') AND next_attempt_at <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
      AND ($3::text IS NULL OR hotline = $3)
    ORDER BY next_attempt_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
RETURNING r.*, r.status::text AS status_text;

-- name: save_progress
-- Only while this run holds the lease; extends it. Returns the row's id, or nothing if the lease was lost.
UPDATE hotline_reports
SET hotline_reference = $3, file_ids = $4, evidence = coalesce($5, evidence),
    lease_expires_at = now() + make_interval(secs => $6), updated_at = now()
WHERE id = $1 AND lease_token = $2 AND status = 'submitting'
RETURNING id;

-- name: log_call
INSERT INTO hotline_report_calls (report_id, call, reference, http_status, code, request_id, error)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: set_last_call
UPDATE hotline_reports SET last_request_id = coalesce($2, last_request_id) WHERE id = $1;

-- name: mark_finished
UPDATE hotline_reports
SET status = 'finished', hotline_reference = $3, finished_at = now(), lease_token = NULL, lease_expires_at = NULL,
    last_error = NULL, last_code = NULL, updated_at = now()
WHERE id = $1 AND lease_token = $2
RETURNING id;

-- name: reschedule
UPDATE hotline_reports
SET next_attempt_at = now() + make_interval(secs => $3), last_error = $4, last_code = $5,
    lease_token = NULL, lease_expires_at = NULL, updated_at = now()
WHERE id = $1 AND lease_token = $2
RETURNING id;

-- name: mark_terminal
UPDATE hotline_reports
SET status = $3::hotline_report_status, last_error = $4, last_code = $5, lease_token = NULL, lease_expires_at = NULL,
    updated_at = now()
WHERE id = $1 AND lease_token = $2
RETURNING id;

-- name: retry_report
UPDATE hotline_reports
SET status = 'queued', attempts = 0, next_attempt_at = now(), lease_token = NULL, lease_expires_at = NULL, updated_at = now()
WHERE id = $1 AND status IN ('failed', 'retracted')
RETURNING *, status::text AS status_text;

-- name: open_report_gauges
SELECT hotline, count(*) AS n, min(created_at) AS oldest
FROM hotline_reports WHERE status IN ('queued', 'submitting') GROUP BY hotline;

-- name: case_ticket
SELECT t.id, t.content_id, t.content_url, t.received_at, t.automated_detection, t.first_action_at, tn.name AS tenant
FROM tickets t LEFT JOIN tenants tn ON tn.id = t.tenant_id
WHERE t.id = $1 AND ($2::bigint[] IS NULL OR t.tenant_id = ANY($2::bigint[]));

-- name: case_evidence
SELECT entry_row, hashset, hashset_version, tool, tool_version, distance, observed_at
FROM ticket_evidence WHERE ticket_id = $1 ORDER BY id;

-- name: case_review
-- The flags of the decision that confirmed the item (the latest actioned or upheld one).
SELECT file_viewed, exif_viewed, escalate, viral, potential_meme, uk_priority, iwf_category, iccam_verdict, decided_at
FROM ticket_decisions WHERE ticket_id = $1 AND to_state IN ('actioned', 'upheld') ORDER BY id DESC LIMIT 1;

-- name: case_content_type
SELECT content_type FROM ticket_notices WHERE ticket_id = $1 AND content_type IS NOT NULL ORDER BY id LIMIT 1;

-- name: case_hashes
-- The most recent value each tool computed for this ticket's uploads.
SELECT DISTINCT ON (tool) tool, value FROM ticket_upload_hashes WHERE ticket_id = $1 ORDER BY tool, observed_at DESC;

-- name: case_uploader
-- What the platform sent, with scans and notices: the latest value of each detail.
SELECT (array_agg(account_id ORDER BY id DESC) FILTER (WHERE account_id IS NOT NULL))[1] AS account_id,
       (array_agg(screen_name ORDER BY id DESC) FILTER (WHERE screen_name IS NOT NULL))[1] AS screen_name,
       (array_agg(host(upload_ip) ORDER BY id DESC) FILTER (WHERE upload_ip IS NOT NULL))[1] AS upload_ip,
       (array_agg(upload_port ORDER BY id DESC) FILTER (WHERE upload_port IS NOT NULL))[1] AS upload_port,
       (array_agg(upload_time ORDER BY id DESC) FILTER (WHERE upload_time IS NOT NULL))[1] AS upload_time
FROM ticket_uploaders WHERE ticket_id = $1
HAVING count(*) > 0;

-- name: insert_upload_hashes
INSERT INTO ticket_upload_hashes (ticket_id, scan_id, tool, value)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bytea[])
ON CONFLICT (ticket_id, scan_id, tool) DO NOTHING;

-- name: insert_uploader
INSERT INTO ticket_uploaders (ticket_id, account_id, screen_name, upload_ip, upload_port, upload_time)
VALUES ($1, $2, $3, $4::inet, $5, $6);

-- name: record_review
-- Runs in the decision's transaction, the ticket locked: the newest decision row is the one just written.
UPDATE ticket_decisions
SET file_viewed = $2, exif_viewed = $3, escalate = $4, viral = $5, potential_meme = $6, uk_priority = $7,
    iwf_category = $8, iccam_verdict = $9
WHERE id = (SELECT max(id) FROM ticket_decisions WHERE ticket_id = $1);

-- name: ticket_signing_secret
-- The secret the ticket's platform verifies hashguard's requests with: its tenant's own webhook's.
SELECT w.secret FROM tickets t JOIN tenant_webhooks w ON w.tenant_id = t.tenant_id WHERE t.id = $1;

-- name: ticket_tenant
SELECT tenant_id FROM tickets WHERE id = $1;

-- name: purge_upload_hashes
DELETE FROM ticket_upload_hashes WHERE ticket_id = $1;

-- name: purge_uploaders
DELETE FROM ticket_uploaders WHERE ticket_id = $1;
