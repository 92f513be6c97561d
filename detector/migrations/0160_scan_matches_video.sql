-- Video (vPDQ) matches name their shares of matching frames: the percentage of the upload's frames
-- that matched the listed video, the percentage of the listed video's frames matched, and how many
-- upload frames matched. NULL for image and exact matches.
ALTER TABLE scan_matches
    ADD COLUMN query_share    real CHECK (query_share BETWEEN 0 AND 100),
    ADD COLUMN index_share    real CHECK (index_share BETWEEN 0 AND 100),
    ADD COLUMN matched_frames integer CHECK (matched_frames >= 0);
