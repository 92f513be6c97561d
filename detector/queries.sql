-- name: recent_entry_matches
-- How often each entry matched within the flood window (this scan's rows are not yet written).
SELECT hash_entry_id, count(*) AS n FROM scan_matches
WHERE hash_entry_id = ANY($1::bigint[]) AND scanned_at > now() - make_interval(secs => $2)
GROUP BY hash_entry_id;

-- name: scans_matched_before
SELECT DISTINCT scan_id FROM scan_matches WHERE scanned_at < now() - make_interval(days => $1);

-- name: forget_scans
DELETE FROM scan_matches
WHERE scan_id = ANY($1::uuid[]) AND ($2::integer IS NULL OR scanned_at < now() - make_interval(days => $2));
