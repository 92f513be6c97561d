-- The detector applies disables and re-enables to its in-memory index as a change (issue 16):
-- it finds the rows a disable covers (same id and hash anywhere in the lineage) by id, not by
-- scanning every entry of the lineage at each change.
CREATE INDEX hash_entries_entry_id ON hash_entries (entry_id);
