-- name: insert_ticket
-- A new live ticket for this tenant's content, unless one exists (then nothing; the caller attaches to it).
INSERT INTO tickets (id, content_id, content_url, source, priority, due_at, automated_detection, tenant_id)
VALUES ($1, $2, $3, $4::ticket_source, $5, $6, $7, $8)
ON CONFLICT (tenant_id, content_id) WHERE state NOT IN ('dismissed', 'reinstated', 'closed') DO NOTHING
RETURNING id;

-- name: insert_tickets
-- Many tenants' contents at once (one lookup batch), each as insert_ticket; the keys are distinct.
INSERT INTO tickets (id, content_id, content_url, source, priority, due_at, automated_detection, tenant_id)
SELECT w.id, w.content_id, w.content_url, $4::ticket_source, $5, $6, $7, w.tenant_id
FROM unnest($1::uuid[], $2::text[], $3::text[], $8::bigint[]) AS w (id, content_id, content_url, tenant_id)
ORDER BY w.tenant_id, w.content_id
ON CONFLICT (tenant_id, content_id) WHERE state NOT IN ('dismissed', 'reinstated', 'closed') DO NOTHING
RETURNING id, tenant_id, content_id;

-- name: live_tickets_for_update
SELECT t.id, t.tenant_id, t.content_id FROM tickets t
JOIN unnest($1::text[], $2::bigint[]) AS w (content_id, tenant_id) ON t.tenant_id = w.tenant_id AND t.content_id = w.content_id
WHERE t.state NOT IN ('dismissed', 'reinstated', 'closed')
ORDER BY t.tenant_id, t.content_id
FOR UPDATE OF t;

-- name: live_ticket_for_update
SELECT id FROM tickets WHERE tenant_id = $2 AND content_id = $1 AND state NOT IN ('dismissed', 'reinstated', 'closed') FOR UPDATE;

-- name: get_ticket
SELECT id, tenant_id, content_id, content_url, source::text AS source, state::text AS state, priority, received_at,
       due_at, automated_detection, lease_key_id, lease_key_prefix, lease_expires_at, action::text AS action, decided_at,
       decided_key_id, first_action_at, sightings, notices, legal_hold, legal_hold_reason, preserve_until,
       evidence_purged_at, updated_at
FROM tickets WHERE id = $1 AND ($2::bigint[] IS NULL OR tenant_id = ANY($2::bigint[]));

-- name: get_tickets
SELECT id, tenant_id, content_id, content_url, source::text AS source, state::text AS state, priority, received_at,
       due_at, automated_detection, lease_key_id, lease_key_prefix, lease_expires_at, action::text AS action, decided_at,
       decided_key_id, first_action_at, sightings, notices, legal_hold, legal_hold_reason, preserve_until,
       evidence_purged_at, updated_at
FROM tickets WHERE id = ANY($1::uuid[]);

-- name: get_ticket_for_update
SELECT id, tenant_id, content_id, content_url, source::text AS source, state::text AS state, priority, received_at,
       due_at, automated_detection, lease_key_id, lease_key_prefix, lease_expires_at, action::text AS action, decided_at,
       decided_key_id, first_action_at, sightings, notices, legal_hold, legal_hold_reason, preserve_until,
       evidence_purged_at, updated_at
FROM tickets WHERE id = $1 AND ($2::bigint[] IS NULL OR tenant_id = ANY($2::bigint[])) FOR UPDATE;

-- name: list_tickets
-- Filters are optional (NULL = any). $5 overdue: a decision is owed and due_at has passed. $8: the
-- tenants the caller may see (NULL = every tenant).
SELECT id, tenant_id, content_id, content_url, source::text AS source, state::text AS state, priority, received_at,
       due_at, automated_detection, lease_key_id, lease_key_prefix, lease_expires_at, action::text AS action, decided_at,
       decided_key_id, first_action_at, sightings, notices, legal_hold, legal_hold_reason, preserve_until,
       evidence_purged_at, updated_at
FROM tickets
WHERE ($1::ticket_state[] IS NULL OR state = ANY($1::ticket_state[]))
  AND ($2::ticket_source[] IS NULL OR source = ANY($2::ticket_source[]))
  AND ($3::smallint IS NULL OR priority = $3)
  AND ($4::text IS NULL OR content_id = $4)
  AND ($5::boolean IS NULL OR $5 = (state IN ('open', 'in_review', 'appealed') AND due_at < now()))
  AND ($8::bigint[] IS NULL OR tenant_id = ANY($8::bigint[]))
ORDER BY priority, due_at, received_at, id
LIMIT $6 OFFSET $7;

-- name: attach_sighting
-- A match raises an undecided ticket's priority and brings its due time forward, never the reverse.
UPDATE tickets
SET sightings = sightings + 1,
    priority = CASE WHEN state IN ('open', 'in_review') THEN least(priority, $2) ELSE priority END,
    due_at = CASE WHEN state IN ('open', 'in_review') THEN least(due_at, $3) ELSE due_at END,
    updated_at = now()
WHERE id = $1;

-- name: attach_sightings
-- attach_sighting for many tickets at once (each listed once).
UPDATE tickets
SET sightings = sightings + 1,
    priority = CASE WHEN state IN ('open', 'in_review') THEN least(priority, $2) ELSE priority END,
    due_at = CASE WHEN state IN ('open', 'in_review') THEN least(due_at, $3) ELSE due_at END,
    updated_at = now()
WHERE id = ANY($1::uuid[]);

-- name: attach_notice
-- Likewise a notice (a decided ticket keeps its due time: a repeated hotline notice about removed
-- content is counted, not re-queued).
UPDATE tickets
SET notices = notices + 1,
    priority = CASE WHEN state IN ('open', 'in_review') THEN least(priority, $2) ELSE priority END,
    due_at = CASE WHEN state IN ('open', 'in_review') THEN least(due_at, $3) ELSE due_at END,
    updated_at = now()
WHERE id = $1;

-- name: insert_evidence_many
-- insert_evidence for many scans' matches at once: one row per match, with its ticket, scan and key.
INSERT INTO ticket_evidence (ticket_id, scan_id, entry_row, hashset, hashset_version, entry_id, tool, tool_version, distance,
                             api_key_id, approval_id, approval_reason, transform,
                             query_share, index_share, matched_frames)
SELECT e.ticket_id, e.scan_id, e.entry_row, e.hashset, e.hashset_version, e.entry_id, e.tool, e.tool_version, e.distance,
       e.api_key_id, e.approval_id, e.approval_reason, e.transform, e.query_share, e.index_share, e.matched_frames
FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[], $5::text[], $6::integer[], $7::text[], $8::text[], $9::text[],
            $10::integer[], $11::bigint[], $12::text[], $13::text[], $14::real[], $15::real[], $16::integer[])
     AS e (ticket_id, scan_id, api_key_id, entry_row, hashset, hashset_version, entry_id, tool, tool_version, distance,
           approval_id, approval_reason, transform, query_share, index_share, matched_frames);

-- name: ticket_evidence
SELECT scan_id, entry_row, hashset, hashset_version, entry_id, tool, tool_version, distance, api_key_id, observed_at,
       approval_id, approval_reason, transform, query_share, index_share, matched_frames
FROM ticket_evidence WHERE ticket_id = $1 ORDER BY id;

-- name: insert_notice
INSERT INTO ticket_notices (ticket_id, source, content_url, explanation, content_type, notifier_name, notifier_email,
                            authority, authority_reference, legal_deadline, bona_fide, api_key_id)
VALUES ($1, $2::ticket_source, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
RETURNING id;

-- name: ticket_notices
SELECT id, source::text AS source, content_url, explanation, content_type, notifier_name, notifier_email, authority,
       authority_reference, legal_deadline, bona_fide, received_at
FROM ticket_notices WHERE ticket_id = $1 ORDER BY id;

-- name: claim_next
-- The most urgent ticket that needs a person and is not leased; SKIP LOCKED so concurrent
-- claimers each get a different one. Appeals skip the key that made the original decision. Only
-- tickets of the tenants the claimer may see ($2; NULL = every tenant).
SELECT id FROM tickets
WHERE state IN ('open', 'in_review', 'appealed')
  AND ($2::bigint[] IS NULL OR tenant_id = ANY($2::bigint[]))
  AND (lease_expires_at IS NULL OR lease_expires_at < now())
  AND NOT (state = 'appealed' AND decided_key_id IS NOT DISTINCT FROM $1)
ORDER BY priority, due_at, received_at, id
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: set_lease
UPDATE tickets
SET state = $2::ticket_state, lease_key_id = $3, lease_key_prefix = $4,
    lease_expires_at = CASE WHEN $3::bigint IS NULL THEN NULL ELSE now() + make_interval(secs => $5) END,
    updated_at = now()
WHERE id = $1;

-- name: apply_decision
-- $3 action in force afterwards; $4 whether this decision is the one an appeal will be checked against.
UPDATE tickets
SET state = $2::ticket_state, action = $3::platform_action,
    decided_at = CASE WHEN $4 THEN now() ELSE decided_at END,
    decided_key_id = CASE WHEN $4 THEN $5 ELSE decided_key_id END,
    first_action_at = CASE WHEN $3::platform_action IS NOT NULL AND $3 <> 'reinstate' THEN coalesce(first_action_at, now()) ELSE first_action_at END,
    -- $8: the key the ticket stays leased to (its decider, for a follow-up report or close), or NULL.
    lease_key_id = $8, lease_key_prefix = CASE WHEN $8::bigint IS NULL THEN NULL ELSE $9 END,
    lease_expires_at = CASE WHEN $8::bigint IS NULL THEN NULL ELSE now() + make_interval(secs => $10) END,
    due_at = coalesce($6, due_at),
    preserve_until = CASE WHEN $7::integer IS NULL THEN preserve_until
                          ELSE greatest(preserve_until, now() + make_interval(days => $7::integer)) END,
    updated_at = now()
WHERE id = $1;

-- name: insert_decision
INSERT INTO ticket_decisions (ticket_id, from_state, to_state, action, ground, legal_ground, explanation, reported_to,
                              report_reference, automated_detection, automated_decision, actor_key_id, actor)
VALUES ($1, $2::ticket_state, $3::ticket_state, $4::platform_action, $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING decided_at;

-- name: ticket_decisions
SELECT from_state::text AS from_state, to_state::text AS to_state, action::text AS action, ground, legal_ground,
       explanation, reported_to, report_reference, automated_detection, automated_decision, actor, decided_at
FROM ticket_decisions WHERE ticket_id = $1 ORDER BY id;

-- name: ticket_sources
SELECT source::text AS source FROM (
    SELECT source, received_at, 0 AS n FROM tickets WHERE id = $1
    UNION ALL
    SELECT source, received_at, id FROM ticket_notices WHERE ticket_id = $1
) s GROUP BY source ORDER BY min(received_at), min(n);

-- name: ticket_content_type
SELECT content_type FROM ticket_notices WHERE ticket_id = $1 AND content_type IS NOT NULL ORDER BY id LIMIT 1;

-- name: insert_statement
INSERT INTO ticket_statements (ticket_id, body) VALUES ($1, $2::jsonb) RETURNING id;

-- name: latest_statement
SELECT body::text AS body FROM ticket_statements WHERE ticket_id = $1 ORDER BY id DESC LIMIT 1;

-- name: set_hold
UPDATE tickets SET legal_hold = $2, legal_hold_reason = $3, updated_at = now() WHERE id = $1;

-- name: policies_for
SELECT hashset, tool, auto_action, action::text AS action FROM takedown_policies
WHERE auto_action AND hashset = ANY($1::text[]) AND (tool = '*' OR tool = ANY($2::text[]));

-- name: get_policy
SELECT hashset, tool, auto_action, action::text AS action FROM takedown_policies WHERE hashset = $1 AND tool = $2;

-- name: upsert_policy
INSERT INTO takedown_policies (hashset, tool, auto_action, action) VALUES ($1, $2, $3, $4::platform_action)
ON CONFLICT (hashset, tool) DO UPDATE SET auto_action = EXCLUDED.auto_action, action = EXCLUDED.action, updated_at = now();

-- name: list_policies
SELECT hashset, tool, auto_action, action::text AS action FROM takedown_policies ORDER BY hashset, tool;

-- name: insert_outbox
INSERT INTO takedown_outbox (ticket_id, idempotency_key, action, body) VALUES ($1, $2, $3::platform_action, $4) RETURNING id;

-- name: claim_deliveries
-- Due rows whose earlier actions for the same ticket are all delivered (a ticket's actions reach
-- the platform in order: never a reinstate before its remove). next_attempt_at moves forward by
-- the lease first, so a process that dies mid-send leaves the row for a retry, not lost. Only rows
-- whose ticket's tenant has somewhere to send them: its own webhook, or for the default tenant
-- the global one when $3 says it is configured. Each row comes with its tenant's webhook (NULL:
-- the global one).
WITH claimed AS (
    UPDATE takedown_outbox o
    SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
    WHERE o.id IN (
        SELECT c.id FROM takedown_outbox c JOIN tickets t ON t.id = c.ticket_id
        WHERE c.state = 'pending' AND c.next_attempt_at <= now()
          AND (EXISTS (SELECT 1 FROM tenant_webhooks w WHERE w.tenant_id = t.tenant_id) OR ($3 AND t.tenant_id = 1))
          AND NOT EXISTS (SELECT 1 FROM takedown_outbox e WHERE e.ticket_id = c.ticket_id AND e.id < c.id AND e.state <> 'delivered')
        ORDER BY c.next_attempt_at, c.id
        LIMIT $1
        FOR UPDATE OF c SKIP LOCKED
    )
    RETURNING o.id, o.ticket_id, o.idempotency_key, o.action::text AS action, o.body, o.attempts
)
SELECT c.*, w.url AS webhook_url, w.secret AS webhook_secret
FROM claimed c JOIN tickets t ON t.id = c.ticket_id LEFT JOIN tenant_webhooks w ON w.tenant_id = t.tenant_id;

-- name: mark_delivered
UPDATE takedown_outbox SET state = 'delivered', delivered_at = now(), last_status = $2, last_error = NULL
WHERE id = $1 AND state = 'pending';

-- name: mark_attempt_failed
UPDATE takedown_outbox
SET state = CASE WHEN $5 THEN 'failed'::outbox_state ELSE 'pending'::outbox_state END,
    last_status = $2, last_error = $3, next_attempt_at = now() + make_interval(secs => $4)
WHERE id = $1 AND state = 'pending';

-- name: retry_failed
UPDATE takedown_outbox SET state = 'pending', attempts = 0, next_attempt_at = now() WHERE ticket_id = $1 AND state = 'failed'
RETURNING id;

-- name: outbox_counts
SELECT state::text AS state, count(*) AS n, min(created_at) AS oldest FROM takedown_outbox GROUP BY state;

-- name: ticket_deliveries
SELECT id, idempotency_key, action::text AS action, state::text AS state, attempts, last_status, last_error, created_at,
       next_attempt_at, delivered_at
FROM takedown_outbox WHERE ticket_id = $1 ORDER BY id;

-- name: purge_candidates
SELECT id FROM tickets
WHERE preserve_until < now() AND evidence_purged_at IS NULL AND NOT legal_hold
ORDER BY preserve_until LIMIT $1
FOR UPDATE SKIP LOCKED;

-- name: ticket_scan_ids
-- The scans behind a ticket's evidence: the detector forgets its copy of them when the evidence goes.
SELECT DISTINCT scan_id FROM ticket_evidence WHERE ticket_id = $1 ORDER BY scan_id;

-- name: purge_evidence
DELETE FROM ticket_evidence WHERE ticket_id = $1;

-- name: purge_notices
UPDATE ticket_notices SET content_url = NULL, explanation = NULL, notifier_name = NULL, notifier_email = NULL
WHERE ticket_id = $1;

-- name: purge_outbox
DELETE FROM takedown_outbox WHERE ticket_id = $1 AND state = 'delivered';

-- name: mark_purged
UPDATE tickets SET content_url = NULL, evidence_purged_at = now(), updated_at = now() WHERE id = $1;

-- name: now
SELECT now();

-- name: queue_gauges
SELECT state::text AS state, count(*) AS n,
       count(*) FILTER (WHERE state IN ('open', 'in_review', 'appealed') AND due_at < now()) AS overdue
FROM tickets GROUP BY state;

-- name: expired_leases
SELECT id FROM tickets
WHERE state IN ('in_review', 'appealed') AND lease_expires_at < now()
ORDER BY lease_expires_at LIMIT $1
FOR UPDATE SKIP LOCKED;

-- name: transparency_notices
-- Notices received in [$1, $2), by source (DSA Art 15(1)(b)); hash matches are own-initiative detections.
-- $3: the tenants counted (NULL = every tenant).
SELECT n.source::text AS key, count(*) AS n FROM ticket_notices n JOIN tickets t ON t.id = n.ticket_id
WHERE n.received_at >= $1 AND n.received_at < $2 AND ($3::bigint[] IS NULL OR t.tenant_id = ANY($3::bigint[]))
GROUP BY n.source
UNION ALL
SELECT 'hash_match', count(*) FROM tickets
WHERE source = 'hash_match' AND received_at >= $1 AND received_at < $2 AND ($3::bigint[] IS NULL OR tenant_id = ANY($3::bigint[]));

-- name: transparency_decisions
-- Decisions in [$1, $2) by resulting state, action, ground, whether detection and decision were
-- automated, the ticket's source and the hotline reported to.
SELECT d.to_state::text AS to_state, d.action::text AS action, d.ground, d.automated_detection, d.automated_decision,
       t.source::text AS source, d.reported_to, count(*) AS n
FROM ticket_decisions d JOIN tickets t ON t.id = d.ticket_id
WHERE d.decided_at >= $1 AND d.decided_at < $2 AND ($3::bigint[] IS NULL OR t.tenant_id = ANY($3::bigint[]))
GROUP BY 1, 2, 3, 4, 5, 6, 7
ORDER BY 1, 2, 3, 4, 5, 6, 7;

-- name: transparency_time_to_action
-- Median seconds from receipt to the first restriction, per source, for restrictions in [$1, $2).
SELECT t.source::text AS key, percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t.first_action_at - t.received_at)) AS median_s
FROM tickets t WHERE t.first_action_at >= $1 AND t.first_action_at < $2 AND ($3::bigint[] IS NULL OR t.tenant_id = ANY($3::bigint[]))
GROUP BY 1 ORDER BY 1;

-- name: transparency_appeal_times
-- Median seconds from an appeal to its decision, for appeals decided in [$1, $2) (DSA Art 15(1)(d)).
SELECT d.to_state::text AS outcome, count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.decided_at - a.decided_at)) AS median_s
FROM ticket_decisions d
JOIN LATERAL (
    SELECT decided_at FROM ticket_decisions a
    WHERE a.ticket_id = d.ticket_id AND a.to_state = 'appealed' AND a.id < d.id ORDER BY a.id DESC LIMIT 1
) a ON true
JOIN tickets t ON t.id = d.ticket_id
WHERE d.to_state IN ('reinstated', 'upheld') AND d.decided_at >= $1 AND d.decided_at < $2
  AND ($3::bigint[] IS NULL OR t.tenant_id = ANY($3::bigint[]))
GROUP BY 1 ORDER BY 1;

-- name: evidence_entry_rows
-- The list entries behind a ticket's hash-match evidence (for wrong-match feedback to the list's issuer).
SELECT DISTINCT entry_row, scan_id FROM ticket_evidence WHERE ticket_id = $1 ORDER BY entry_row, scan_id;

-- name: held_scan_ids
-- Which of these scans a ticket's evidence holds: the detector keeps its match records of those.
SELECT DISTINCT scan_id FROM ticket_evidence WHERE scan_id = ANY($1::uuid[]);

-- name: set_tenant_webhook
INSERT INTO tenant_webhooks (tenant_id, url, secret) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id) DO UPDATE SET url = EXCLUDED.url, secret = EXCLUDED.secret, updated_at = now();

-- name: clear_tenant_webhook
DELETE FROM tenant_webhooks WHERE tenant_id = $1 RETURNING tenant_id;

-- name: tenant_webhook_urls
SELECT t.name, w.url, w.updated_at FROM tenant_webhooks w JOIN tenants t ON t.id = w.tenant_id ORDER BY t.name;

-- name: visible_tickets
SELECT id FROM tickets WHERE id = ANY($1::uuid[]) AND ($2::bigint[] IS NULL OR tenant_id = ANY($2::bigint[]));
