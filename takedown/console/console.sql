-- The console's named queries: the queue as reviewers see it, previews, reveals and escalations.

-- name: queue
-- Tickets by priority and due time with what the queue shows of each. Filters are optional
-- (NULL = any): $1 states, $2 sources, $3 list name, $4 tenant ids the caller may see,
-- $5 one tenant, $6 overdue only, $7 held by this key, $8 limit, $9 escalated only.
SELECT t.id, t.tenant_id, n.name AS tenant, t.content_id, t.source::text AS source, t.state::text AS state, t.priority,
       t.received_at, t.due_at, t.lease_key_id, t.lease_key_prefix, t.lease_expires_at, t.sightings, t.notices,
       t.automated_detection, t.decided_key_id,
       array(SELECT DISTINCT e.hashset FROM ticket_evidence e WHERE e.ticket_id = t.id ORDER BY e.hashset) AS hashsets,
       (EXISTS (SELECT 1 FROM ticket_evidence e WHERE e.ticket_id = t.id)
        AND NOT EXISTS (SELECT 1 FROM ticket_evidence e WHERE e.ticket_id = t.id AND e.distance <> 0)) AS exact,
       EXISTS (SELECT 1 FROM ticket_escalations x WHERE x.ticket_id = t.id AND x.escalated_at > coalesce(t.decided_at, '-infinity')) AS escalated,
       now() AS now
FROM tickets t JOIN tenants n ON n.id = t.tenant_id
WHERE ($1::ticket_state[] IS NULL OR t.state = ANY($1::ticket_state[]))
  AND ($2::ticket_source[] IS NULL OR t.source = ANY($2::ticket_source[]))
  AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM ticket_evidence e WHERE e.ticket_id = t.id AND e.hashset = $3))
  AND ($4::bigint[] IS NULL OR t.tenant_id = ANY($4::bigint[]))
  AND ($5::bigint IS NULL OR t.tenant_id = $5)
  AND ($6::boolean IS NOT TRUE OR (t.state IN ('open', 'in_review', 'appealed') AND t.due_at < now()))
  AND ($7::bigint IS NULL OR (t.lease_key_id = $7 AND t.lease_expires_at > now()))
  AND ($9::boolean IS NOT TRUE OR EXISTS (SELECT 1 FROM ticket_escalations x WHERE x.ticket_id = t.id
                                          AND x.escalated_at > coalesce(t.decided_at, '-infinity')))
ORDER BY t.priority, t.due_at, t.received_at, t.id
LIMIT $8;

-- name: queue_counts
-- Tickets per state, overdue ones, and those held now, within the tenants the caller may see ($1).
SELECT t.state::text AS state, count(*) AS n,
       count(*) FILTER (WHERE t.state IN ('open', 'in_review', 'appealed') AND t.due_at < now()) AS overdue,
       count(*) FILTER (WHERE t.lease_expires_at > now()) AS held
FROM tickets t WHERE ($1::bigint[] IS NULL OR t.tenant_id = ANY($1::bigint[]))
GROUP BY t.state;

-- name: queue_hashsets
SELECT DISTINCT e.hashset FROM ticket_evidence e JOIN tickets t ON t.id = e.ticket_id
WHERE ($1::bigint[] IS NULL OR t.tenant_id = ANY($1::bigint[])) ORDER BY e.hashset;

-- name: entry_sightings
-- For each list entry in a ticket's evidence: how often it matched, in how many tickets and
-- tenants, first and last (within the tenants the caller may see, $2).
SELECT e.hashset, e.entry_id, count(*) AS matches, count(DISTINCT e.ticket_id) AS tickets,
       count(DISTINCT t.tenant_id) AS tenants, min(e.observed_at) AS first_seen, max(e.observed_at) AS last_seen
FROM ticket_evidence e JOIN tickets t ON t.id = e.ticket_id
WHERE (e.hashset, e.entry_id) IN (SELECT hashset, entry_id FROM ticket_evidence WHERE ticket_id = $1)
  AND ($2::bigint[] IS NULL OR t.tenant_id = ANY($2::bigint[]))
GROUP BY e.hashset, e.entry_id ORDER BY e.hashset, e.entry_id;

-- name: insert_preview
INSERT INTO ticket_previews (ticket_id, url, api_key_id) VALUES ($1, $2, $3) RETURNING id, supplied_at;

-- name: ticket_previews
SELECT p.id, p.url, p.supplied_at,
       coalesce((SELECT max(r.step) FROM console_reveals r WHERE r.preview_id = p.id AND r.key_id = $2), 0) AS shown
FROM ticket_previews p WHERE p.ticket_id = $1 ORDER BY p.id;

-- name: preview
SELECT id, url FROM ticket_previews WHERE id = $1 AND ticket_id = $2;

-- name: lock_person_exposure
-- Reveals by one person are serialised, so two tabs cannot both take the last one of the day.
SELECT pg_advisory_xact_lock(hashtext('console_reveals'), $1::integer);

-- name: reveals_today
-- Items this person began to reveal today (UTC): the first step of each counts against the limit.
SELECT count(*) FROM console_reveals
WHERE key_id = $1 AND step = 1 AND revealed_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';

-- name: granted_today
SELECT coalesce(sum(extra), 0) FROM exposure_overrides WHERE key_id = $1 AND day = (now() AT TIME ZONE 'UTC')::date;

-- name: shown_step
SELECT coalesce(max(step), 0) FROM console_reveals WHERE preview_id = $1 AND key_id = $2;

-- name: insert_reveal
INSERT INTO console_reveals (ticket_id, preview_id, key_id, step) VALUES ($1, $2, $3, $4) RETURNING revealed_at;

-- name: ticket_reveals
SELECT r.preview_id, r.key_id, r.step, r.revealed_at FROM console_reveals r WHERE r.ticket_id = $1 ORDER BY r.id;

-- name: was_revealed
-- Whether anyone was shown any step of a ticket's preview ($2: one preview item; NULL: any of them).
SELECT EXISTS (SELECT 1 FROM console_reveals WHERE ticket_id = $1 AND ($2::bigint IS NULL OR preview_id = $2));

-- name: insert_override
INSERT INTO exposure_overrides (key_id, day, extra, reason, granted_by)
VALUES ($1, (now() AT TIME ZONE 'UTC')::date, $2, $3, $4) RETURNING day;

-- name: insert_escalation
INSERT INTO ticket_escalations (ticket_id, reason, escalated_by) VALUES ($1, $2, $3) RETURNING escalated_at;

-- name: ticket_escalations
SELECT reason, escalated_by, escalated_at FROM ticket_escalations WHERE ticket_id = $1 ORDER BY id;

-- name: staff_keys
-- Active reviewer and lead keys a ticket may be handed to, with the account behind each if any.
SELECT k.id, k.key_prefix, k.role::text AS role, k.label,
       array(SELECT t.tenant_id FROM api_key_tenants t WHERE t.key_id = k.id) AS tenants
FROM api_keys k WHERE k.revoked_at IS NULL AND k.role IN ('reviewer', 'lead') ORDER BY k.label, k.key_prefix;

