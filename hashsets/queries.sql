-- name: get_hashset
SELECT id, name, tool, source, status::text AS status, is_demo FROM hashsets WHERE name = $1;

-- name: insert_hashset
INSERT INTO hashsets (name, tool, source, is_demo) VALUES ($1, $2, $3, $4) RETURNING id;

-- name: lock_hashset
SELECT id FROM hashsets WHERE id = $1 FOR UPDATE;

-- name: next_version
SELECT coalesce(max(version), 0) + 1 FROM hashset_versions WHERE hashset_id = $1;

-- name: insert_version
INSERT INTO hashset_versions (hashset_id, version, entry_count, file_sha256)
VALUES ($1, $2, 0, $3) RETURNING id;

-- name: finish_version
UPDATE hashset_versions SET entry_count = $2 WHERE id = $1;

-- name: set_current_version
UPDATE hashsets SET current_version_id = $2 WHERE id = $1;

-- name: list_hashsets
SELECT h.name, h.tool, h.source, h.status::text AS status, h.is_demo, v.version, v.entry_count, v.imported_at
FROM hashsets h LEFT JOIN hashset_versions v ON v.id = h.current_version_id
ORDER BY h.name;

-- name: active_versions
-- Every list the detector should match against now: its current version, if active.
SELECT h.id AS hashset_id, h.name, h.tool, v.id AS version_id, v.version, v.entry_count
FROM hashsets h JOIN hashset_versions v ON v.id = h.current_version_id
WHERE h.status = 'active'
ORDER BY h.id;

-- name: version_entries
-- Streams one version's entries in id order; hashes stay inside the process that loads them.
SELECT id, hash FROM hash_entries WHERE version_id = $1 ORDER BY id;

-- name: describe_entries
-- What a match reports: list name, version and the issuer's entry id, never the hash.
SELECT e.id, h.name AS hashset, v.version AS hashset_version, e.entry_id, e.category
FROM hash_entries e
JOIN hashset_versions v ON v.id = e.version_id
JOIN hashsets h ON h.id = v.hashset_id
WHERE e.id = ANY($1::bigint[]);
