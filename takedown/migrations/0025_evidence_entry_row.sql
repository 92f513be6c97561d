-- The matched list entry's row id, kept in takedown's own evidence so a reviewer's wrong-match
-- verdict finds the entry without joining the detector's scan_matches table (each context reads
-- only its own tables). Earlier evidence takes it from the detector's copy of the same match:
-- the two were always written in one transaction and are purged together, so every row has one.
-- If a row has none (someone deleted scan_matches rows by hand), SET NOT NULL stops this
-- migration rather than keep evidence that cannot name its entry.
ALTER TABLE ticket_evidence ADD COLUMN entry_row bigint;

UPDATE ticket_evidence te
SET entry_row = sm.hash_entry_id
FROM scan_matches sm
WHERE sm.scan_id = te.scan_id AND sm.hashset = te.hashset AND sm.entry_id = te.entry_id;

ALTER TABLE ticket_evidence ALTER COLUMN entry_row SET NOT NULL;
