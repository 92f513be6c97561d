-- name: insert_source
INSERT INTO exchange_sources (name, kind, config, members, interval_s, upvotes, created_by)
VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING RETURNING id;

-- name: sources
SELECT id, name, kind, config::text AS config, members, interval_s, upvotes, paused, checkpoint::text AS checkpoint,
       next_due_at, last_page_at, last_success_at, source_time, last_error, last_error_kind, last_error_at,
       entries_fetched, pages_applied, created_by, created_at,
       (SELECT count(*) FROM exchange_quarantine q WHERE q.source_id = s.id AND q.resolved_at IS NULL) AS quarantined
FROM exchange_sources s WHERE $1::text IS NULL OR name = $1 ORDER BY name;

-- name: lock_source
SELECT checkpoint::text AS checkpoint FROM exchange_sources WHERE id = $1 FOR UPDATE;

-- name: set_paused
UPDATE exchange_sources SET paused = $2 WHERE name = $1 RETURNING id;

-- name: set_due_now
UPDATE exchange_sources SET next_due_at = now() WHERE name = $1 RETURNING id;

-- name: delete_source
DELETE FROM exchange_sources WHERE name = $1 RETURNING id;

-- name: due_sources
SELECT id, name FROM exchange_sources WHERE NOT paused AND next_due_at <= now() ORDER BY next_due_at;

-- name: next_due
SELECT min(next_due_at) FROM exchange_sources WHERE NOT paused;

-- name: try_lock
SELECT pg_try_advisory_lock(14, $1);

-- name: unlock
SELECT pg_advisory_unlock(14, $1);

-- name: advance
UPDATE exchange_sources SET checkpoint = $2::jsonb, last_page_at = now(), entries_fetched = entries_fetched + $3,
       pages_applied = pages_applied + $4, source_time = coalesce($5, source_time)
WHERE id = $1;

-- name: finished
UPDATE exchange_sources SET last_success_at = now(), next_due_at = now() + make_interval(secs => interval_s),
       last_error = NULL, last_error_kind = NULL
WHERE id = $1;

-- name: failed
UPDATE exchange_sources SET last_error = $2, last_error_kind = $3, last_error_at = now(),
       next_due_at = now() + make_interval(secs => least(interval_s, $4))
WHERE id = $1;

-- name: list_link
SELECT l.hashset_id, l.version_id, h.current_version_id, h.name FROM exchange_lists l JOIN hashsets h ON h.id = l.hashset_id
WHERE l.source_id = $1 AND l.tool = $2;

-- name: insert_link
INSERT INTO exchange_lists (source_id, tool, hashset_id) VALUES ($1, $2, $3);

-- name: set_link_version
UPDATE exchange_lists SET version_id = $3 WHERE source_id = $1 AND tool = $2;

-- name: source_lists
SELECT l.tool, h.name FROM exchange_lists l JOIN hashsets h ON h.id = l.hashset_id WHERE l.source_id = $1 ORDER BY l.tool;

-- name: version_rows
SELECT id, entry_id FROM hash_entries WHERE version_id = $1;

-- name: entry_states
SELECT entry_id, updated_at, deleted, rows::text AS rows, digests::text AS digests FROM exchange_entries
WHERE source_id = $1 AND entry_id = ANY($2::text[]);

-- name: upsert_states
INSERT INTO exchange_entries (source_id, entry_id, updated_at, deleted, rows, digests)
SELECT $1, e, u, d, r::jsonb, g::jsonb FROM unnest($2::text[], $3::timestamptz[], $4::boolean[], $5::text[], $6::text[]) AS t(e, u, d, r, g)
ON CONFLICT (source_id, entry_id) DO UPDATE
SET updated_at = EXCLUDED.updated_at, deleted = EXCLUDED.deleted, rows = EXCLUDED.rows, digests = EXCLUDED.digests;

-- name: quarantine
INSERT INTO exchange_quarantine (source_id, scope, position, entry_id, reason) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (source_id, scope, position) WHERE resolved_at IS NULL
DO UPDATE SET last_at = now(), attempts = exchange_quarantine.attempts + 1, reason = EXCLUDED.reason;

-- name: open_page_failures
SELECT id, position FROM exchange_quarantine WHERE source_id = $1 AND scope = 'page' AND resolved_at IS NULL ORDER BY id;

-- name: resolve_quarantine
UPDATE exchange_quarantine SET resolved_at = now() WHERE id = $1;

-- name: retry_failed_page
UPDATE exchange_quarantine SET last_at = now(), attempts = attempts + 1, reason = $2 WHERE id = $1;

-- name: quarantine_list
SELECT scope, position, entry_id, reason, first_at, last_at, attempts FROM exchange_quarantine
WHERE source_id = $1 AND resolved_at IS NULL ORDER BY id;

-- name: source_of_entry_row
-- Which source (and hash type) fed the list holding this entry row, if any.
SELECT s.id AS source_id, s.name, s.kind, s.upvotes, l.tool, e.entry_id
FROM hash_entries e
JOIN hashset_versions v ON v.id = e.version_id
JOIN exchange_lists l ON l.hashset_id = v.hashset_id
JOIN exchange_sources s ON s.id = l.source_id
WHERE e.id = $1;

-- name: queue_feedback
INSERT INTO exchange_feedback (source_id, entry_id, tool, vote, reason, ticket, actor) VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT DO NOTHING RETURNING id;

-- name: due_feedback
SELECT f.id, f.source_id, s.name AS source, s.kind, s.config::text AS config, f.entry_id, f.tool, f.vote, f.reason, f.attempts,
       (SELECT e.hash FROM exchange_entries x JOIN hash_entries e ON e.id = (x.rows ->> f.tool)::bigint
        WHERE x.source_id = f.source_id AND x.entry_id = f.entry_id) AS value
FROM exchange_feedback f JOIN exchange_sources s ON s.id = f.source_id
WHERE f.sent_at IS NULL AND f.failed_at IS NULL AND f.next_at <= now()
ORDER BY f.next_at LIMIT $1 FOR UPDATE OF f SKIP LOCKED;

-- name: feedback_sent
UPDATE exchange_feedback SET sent_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = $1;

-- name: feedback_retry
UPDATE exchange_feedback SET attempts = attempts + 1, last_error = $2,
       next_at = now() + make_interval(secs => $3), failed_at = CASE WHEN $4 THEN now() END
WHERE id = $1;

-- name: feedback_list
SELECT entry_id, tool, vote, reason, ticket, actor, created_at, attempts, sent_at, failed_at, last_error
FROM exchange_feedback WHERE source_id = $1 ORDER BY id;

-- name: current_version
SELECT current_version_id FROM hashsets WHERE id = $1;
