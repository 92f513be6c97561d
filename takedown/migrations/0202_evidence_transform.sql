-- The query variant a hash match was found under ('original', 'mirror_h', 'rot90', 'trimmed', ...),
-- shown to reviewers ("matched when mirrored") and available to hotline reports.
ALTER TABLE ticket_evidence ADD COLUMN transform text NOT NULL DEFAULT 'original';
