-- name: recent_entry_matches
-- Flood counts: distinct contents per entry within the window, after the entry's last release ($3, $4),
-- the matches being added ($5-$7) included, each source (the caller's tenant) counting at most $8.
WITH since AS (
    SELECT e.entry, greatest(now() - make_interval(secs => $2), r.released_at) AS cutoff
    FROM unnest($1::bigint[]) AS e(entry)
    LEFT JOIN unnest($3::bigint[], $4::timestamptz[]) AS r(entry, released_at) ON r.entry = e.entry
), seen AS (
    SELECT m.hash_entry_id, m.tenant_id AS source, m.content_id
    FROM scan_matches m JOIN since s ON s.entry = m.hash_entry_id
    WHERE m.scanned_at > s.cutoff AND NOT m.shadow
    UNION
    SELECT a.entry, a.source, a.content_id FROM unnest($5::bigint[], $6::bigint[], $7::text[]) AS a(entry, source, content_id)
), per_source AS (
    SELECT hash_entry_id, source, count(*) AS n FROM seen GROUP BY hash_entry_id, source
)
SELECT hash_entry_id, sum(CASE WHEN $8::integer IS NULL THEN n ELSE least(n, $8::integer) END)::integer AS n
FROM per_source GROUP BY hash_entry_id;

-- name: scans_matched_before
SELECT DISTINCT scan_id FROM scan_matches WHERE scanned_at < now() - make_interval(days => $1);

-- name: forget_scans
DELETE FROM scan_matches
WHERE scan_id = ANY($1::uuid[]) AND ($2::integer IS NULL OR scanned_at < now() - make_interval(days => $2));

-- name: probe_lock
-- One key's matching calls are judged one after another, whichever replica serves them; and
-- whether the key was suspended meanwhile (by another replica), in the same round trip.
SELECT pg_advisory_xact_lock(1886548577, ($1::bigint & 2147483647)::integer) IS NOT NULL AS locked,
       EXISTS (SELECT 1 FROM key_controls WHERE key_id = $1 AND suspended_at IS NOT NULL) AS suspended;

-- name: probe_previous
-- What the key sent for these entries within the window; rows older than the window go in the same statement.
WITH gone AS (
    DELETE FROM probe_queries WHERE api_key_id = $1 AND seen_at < now() - make_interval(secs => $4)
)
SELECT p.tool, p.entry_row, p.query, p.distance FROM probe_queries p
JOIN unnest($2::text[], $3::bigint[]) AS e(tool, entry_row) ON e.tool = p.tool AND e.entry_row = p.entry_row
WHERE p.api_key_id = $1 AND p.seen_at > now() - make_interval(secs => $4)
ORDER BY p.seen_at, p.query;

-- name: probe_remember
INSERT INTO probe_queries (api_key_id, tool, entry_row, query, distance)
SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bytea[], $5::integer[])
ON CONFLICT (api_key_id, tool, entry_row, query) DO UPDATE SET seen_at = now();
