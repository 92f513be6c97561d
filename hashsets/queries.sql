-- name: get_hashset
SELECT id, name, tool, source, status::text AS status, is_demo, threshold, current_version_id, dihedral FROM hashsets WHERE name = $1;

-- name: insert_hashset
INSERT INTO hashsets (name, tool, source, is_demo) VALUES ($1, $2, $3, $4) RETURNING id;

-- name: lock_hashset
SELECT id FROM hashsets WHERE id = $1 FOR UPDATE;

-- name: next_version
SELECT coalesce(max(version), 0) + 1 FROM hashset_versions WHERE hashset_id = $1;

-- name: get_version
SELECT id, version, kind::text AS kind, lineage, entry_count, issuer_version, issued_at
FROM hashset_versions WHERE hashset_id = $1 AND version = $2;

-- name: get_version_by_id
SELECT id, version, kind::text AS kind, lineage, entry_count, issuer_version, issued_at
FROM hashset_versions WHERE id = $1;

-- name: get_issuer_version
SELECT id, version, kind::text AS kind, lineage, entry_count, issuer_version, issued_at
FROM hashset_versions WHERE hashset_id = $1 AND issuer_version = $2;

-- name: insert_version
INSERT INTO hashset_versions (
    hashset_id, version, entry_count, file_sha256, kind, base_version_id, issuer, issuer_version, issued_at,
    signature_status, signer_key_id, manifest, imported_by)
VALUES ($1, $2, 0, $3, $4::hashset_version_kind, $5, $6, $7, $8, $9::hashset_signature_status, $10, $11::jsonb, $12)
RETURNING id;

-- name: finish_version
UPDATE hashset_versions SET entry_count = $2, added_count = $3, retracted_count = $4, lineage = $5 WHERE id = $1;

-- name: set_current_version
UPDATE hashsets SET current_version_id = $2 WHERE id = $1;

-- name: set_status
UPDATE hashsets SET status = $2::hashset_status WHERE id = $1;

-- name: set_threshold
UPDATE hashsets SET threshold = $2 WHERE id = $1;

-- name: set_dihedral
UPDATE hashsets SET dihedral = $2 WHERE id = $1;

-- name: list_hashsets
SELECT h.name, h.tool, h.source, h.status::text AS status, h.is_demo, h.threshold, v.version, v.entry_count, v.imported_at,
       v.signature_status::text AS signature_status, v.imported_by, v.issuer_version
FROM hashsets h LEFT JOIN hashset_versions v ON v.id = h.current_version_id
ORDER BY h.name;

-- name: list_versions
SELECT v.version, v.kind::text AS kind, b.version AS base_version, v.issuer, v.issuer_version, v.issued_at,
       v.signature_status::text AS signature_status, k.fingerprint AS signer, v.imported_by, v.imported_at,
       v.entry_count, v.added_count, v.retracted_count, (v.id = h.current_version_id) AS current
FROM hashset_versions v
JOIN hashsets h ON h.id = v.hashset_id
LEFT JOIN hashset_versions b ON b.id = v.base_version_id
LEFT JOIN trusted_keys k ON k.id = v.signer_key_id
WHERE v.hashset_id = $1
ORDER BY v.version;

-- name: active_versions
-- Every list the detector should hold now: its current version, if the list is active or shadow.
SELECT h.id AS hashset_id, h.name, h.tool, h.status::text AS status, h.threshold, h.dihedral,
       v.id AS version_id, v.version, v.entry_count, v.lineage
FROM hashsets h JOIN hashset_versions v ON v.id = h.current_version_id
WHERE h.status <> 'disabled'
ORDER BY h.id;

-- name: generation
SELECT generation FROM hashset_generation;

-- name: version_entries
-- One version's entries: added in its lineage, not retracted in it, not disabled. Never logged.
SELECT e.id, e.hash FROM hash_entries e
WHERE e.version_id = ANY($1::integer[])
  AND NOT EXISTS (SELECT 1 FROM hash_retractions r WHERE r.entry_row = e.id AND r.version_id = ANY($1::integer[]))
  AND NOT EXISTS (SELECT 1 FROM hash_entry_disables d JOIN hash_entries de ON de.id = d.entry_row
                  WHERE d.hashset_id = $2 AND d.entry_id = e.entry_id AND de.hash = e.hash);

-- name: version_entry_details
-- The same set with ids and classification, for the admin-only export.
SELECT e.entry_id, e.hash, e.category, e.scheme::text AS scheme FROM hash_entries e
WHERE e.version_id = ANY($1::integer[])
  AND NOT EXISTS (SELECT 1 FROM hash_retractions r WHERE r.entry_row = e.id AND r.version_id = ANY($1::integer[]))
ORDER BY e.id;

-- name: alive_entry_by_id
SELECT e.id, e.hash FROM hash_entries e
WHERE e.version_id = ANY($1::integer[]) AND e.entry_id = $2
  AND NOT EXISTS (SELECT 1 FROM hash_retractions r WHERE r.entry_row = e.id AND r.version_id = ANY($1::integer[]));

-- name: create_retraction_stage
CREATE TEMP TABLE import_retractions (line integer NOT NULL, entry_id text NOT NULL, hash bytea) ON COMMIT DROP;

-- name: resolve_retractions_by_id
SELECT s.line, e.id AS entry_row, (s.hash IS NOT NULL AND e.hash <> s.hash) AS hash_differs
FROM import_retractions s
LEFT JOIN hash_entries e ON e.version_id = ANY($1::integer[]) AND e.entry_id = s.entry_id
    AND NOT EXISTS (SELECT 1 FROM hash_retractions r WHERE r.entry_row = e.id AND r.version_id = ANY($1::integer[]))
WHERE s.entry_id <> ''
ORDER BY s.line;

-- name: resolve_retractions_by_hash
SELECT s.line, e.id AS entry_row, false AS hash_differs
FROM import_retractions s
LEFT JOIN hash_entries e ON e.version_id = ANY($1::integer[]) AND e.hash = s.hash
    AND NOT EXISTS (SELECT 1 FROM hash_retractions r WHERE r.entry_row = e.id AND r.version_id = ANY($1::integer[]))
WHERE s.entry_id = ''
ORDER BY s.line;

-- name: insert_retractions
INSERT INTO hash_retractions (entry_row, version_id) SELECT DISTINCT unnest($1::bigint[]), $2::integer ON CONFLICT DO NOTHING;

-- name: add_conflicts
-- Ids a delta adds that its base still holds (and the delta does not retract).
SELECT n.entry_id FROM hash_entries n
JOIN hash_entries o ON o.version_id = ANY($2::integer[]) AND o.entry_id = n.entry_id
WHERE n.version_id = $1
  AND NOT EXISTS (SELECT 1 FROM hash_retractions r WHERE r.entry_row = o.id AND r.version_id = ANY($3::integer[]))
ORDER BY n.id LIMIT 20;

-- name: describe_entries
-- What a match reports: list name, the version that added the entry and the issuer's entry id, never the hash.
SELECT e.id, h.name AS hashset, v.version AS hashset_version, e.entry_id, e.category
FROM hash_entries e
JOIN hashset_versions v ON v.id = e.version_id
JOIN hashsets h ON h.id = v.hashset_id
WHERE e.id = ANY($1::bigint[]);

-- name: insert_trusted_key
INSERT INTO trusted_keys (organisation, public_key, fingerprint, added_by) VALUES ($1, $2, $3, $4)
ON CONFLICT (organisation, public_key) DO UPDATE SET revoked_at = NULL
RETURNING id;

-- name: trusted_keys
SELECT id, organisation, public_key, fingerprint, added_by, added_at FROM trusted_keys
WHERE revoked_at IS NULL ORDER BY organisation, id;

-- name: revoke_trusted_key
UPDATE trusted_keys SET revoked_at = now() WHERE organisation = $1 AND fingerprint = $2 AND revoked_at IS NULL RETURNING id;

-- name: insert_disable
INSERT INTO hash_entry_disables (hashset_id, entry_id, entry_row, reason, actor) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING;

-- name: delete_disables
DELETE FROM hash_entry_disables WHERE hashset_id = $1 AND entry_id = $2 RETURNING entry_row;

-- name: list_disables
SELECT entry_id, reason, actor, disabled_at FROM hash_entry_disables WHERE hashset_id = $1 ORDER BY disabled_at;

-- name: insert_allow
INSERT INTO allowlist (tool, hash, reason, actor) VALUES ($1, $2, $3, $4) ON CONFLICT (tool, hash) DO NOTHING RETURNING id;

-- name: delete_allow
DELETE FROM allowlist WHERE id = $1 RETURNING tool;

-- name: list_allow
SELECT id, tool, reason, actor, added_at FROM allowlist ORDER BY id;

-- name: allow_hashes
SELECT id, tool, hash FROM allowlist ORDER BY id;

-- name: insert_event
INSERT INTO hashset_events (actor, action, hashset, details) VALUES ($1, $2, $3, $4::jsonb);

-- name: list_events
SELECT at, actor, action, hashset, details::text AS details FROM hashset_events
WHERE $1::text IS NULL OR hashset = $1 ORDER BY id;

-- name: insert_feedback
INSERT INTO hash_entry_feedback (entry_row, scan_id, reviewer, note) VALUES ($1, $2, $3, $4) RETURNING id;

-- name: feedback_for_list
SELECT e.entry_id, v.version AS added_in_version, count(*) AS wrong_matches, max(f.decided_at) AS last_decided_at,
       string_agg(NULLIF(f.note, ''), ' | ' ORDER BY f.id) AS notes
FROM hash_entry_feedback f
JOIN hash_entries e ON e.id = f.entry_row
JOIN hashset_versions v ON v.id = e.version_id
WHERE v.hashset_id = $1
GROUP BY e.entry_id, v.version
ORDER BY e.entry_id;

-- name: quarantined_among
SELECT entry_row FROM hash_entry_quarantine WHERE entry_row = ANY($1::bigint[]) AND released_at IS NULL;

-- name: quarantine_entry
-- A released entry is quarantined again by a later flood: the detector counted only matches after
-- its release, so this is a new flood, not the one a reviewer already looked at.
INSERT INTO hash_entry_quarantine (entry_row, matches_seen) VALUES ($1, $2)
ON CONFLICT (entry_row) DO UPDATE SET since = now(), matches_seen = EXCLUDED.matches_seen, released_at = NULL, released_by = NULL
WHERE hash_entry_quarantine.released_at IS NOT NULL
RETURNING entry_row;

-- name: quarantine_released_at
SELECT entry_row, released_at FROM hash_entry_quarantine WHERE entry_row = ANY($1::bigint[]) AND released_at IS NOT NULL;

-- name: count_quarantined
SELECT count(*) FROM hash_entry_quarantine WHERE released_at IS NULL;

-- name: release_quarantine
UPDATE hash_entry_quarantine q SET released_at = now(), released_by = $3
FROM hash_entries e JOIN hashset_versions v ON v.id = e.version_id
WHERE q.entry_row = e.id AND v.hashset_id = $1 AND e.entry_id = $2 AND q.released_at IS NULL
RETURNING q.entry_row;

-- name: list_quarantine
SELECT e.entry_id, q.since, q.matches_seen FROM hash_entry_quarantine q
JOIN hash_entries e ON e.id = q.entry_row JOIN hashset_versions v ON v.id = e.version_id
WHERE v.hashset_id = $1 AND q.released_at IS NULL ORDER BY q.since;

-- name: set_file_sha256
UPDATE hashset_versions SET file_sha256 = $2 WHERE id = $1;

-- name: duplicate_ids
SELECT entry_id, count(*) AS n FROM hash_entries WHERE version_id = $1
GROUP BY entry_id HAVING count(*) > 1 ORDER BY min(id) LIMIT 20;

-- name: purge_scan_hashes
DELETE FROM scan_hashes WHERE scanned_at < now() - make_interval(days => $1);

-- name: recent_scan_hashes
SELECT scan_id, content_id, content_url, api_key_id, tenant_id, hash FROM scan_hashes
WHERE tool = $1 AND scanned_at >= now() - make_interval(days => $2);

-- name: added_entries
-- Entries of the new version whose hash the version it replaced did not hold: what look-back checks.
SELECT e.id, e.hash FROM hash_entries e
WHERE e.version_id = ANY($1::integer[])
  AND NOT EXISTS (SELECT 1 FROM hash_retractions r WHERE r.entry_row = e.id AND r.version_id = ANY($1::integer[]))
  AND NOT EXISTS (
      SELECT 1 FROM hash_entries o
      WHERE o.version_id = ANY($2::integer[]) AND o.hash = e.hash
        AND NOT EXISTS (SELECT 1 FROM hash_retractions r2 WHERE r2.entry_row = o.id AND r2.version_id = ANY($2::integer[])));

-- name: entry_classifications
-- For hotline reports: each matched entry's category, its scheme and its version's issuer; never the hash.
SELECT e.id, e.category, e.scheme::text AS scheme, nullif(v.issuer, '') AS issuer
FROM hash_entries e
JOIN hashset_versions v ON v.id = e.version_id
WHERE e.id = ANY($1::bigint[]);

-- name: lineage_entries
-- Entries added in versions $1 that no version of lineage $2 retracts, each with whether it is disabled
-- now (the snapshot's base holds disabled rows too, so re-enabling one needs no read). Never logged.
SELECT e.id, e.hash,
       EXISTS (SELECT 1 FROM hash_entry_disables d JOIN hash_entries de ON de.id = d.entry_row
               WHERE d.hashset_id = $3 AND d.entry_id = e.entry_id AND de.hash = e.hash) AS disabled
FROM hash_entries e
WHERE e.version_id = ANY($1::integer[])
  AND NOT EXISTS (SELECT 1 FROM hash_retractions r WHERE r.entry_row = e.id AND r.version_id = ANY($2::integer[]));

-- name: retracted_rows
-- Rows that versions $1 retract (a delta's removals from the index).
SELECT DISTINCT entry_row FROM hash_retractions WHERE version_id = ANY($1::integer[]);

-- name: disabled_rows
-- Rows of lineage $1 that list $2's disables stop matching (same id and hash). The unique
-- (version_id, entry_id) index finds them per lineage version; a separate entry_id index would
-- also turn the delta import's duplicate-id check (add_conflicts) into nested loops.
SELECT e.id FROM hash_entry_disables d
JOIN hash_entries de ON de.id = d.entry_row
JOIN hash_entries e ON e.entry_id = d.entry_id AND e.hash = de.hash
WHERE d.hashset_id = $2 AND e.version_id = ANY($1::integer[])
  AND NOT EXISTS (SELECT 1 FROM hash_retractions r WHERE r.entry_row = e.id AND r.version_id = ANY($1::integer[]));

-- name: database_identity
-- Which database this is (name and oid: a re-created one differs), so index files built from
-- another database sharing HASHGUARD_INDEX_DIR are never taken for this one's.
SELECT current_database() || ':' || d.oid::text FROM pg_database d WHERE d.datname = current_database();
