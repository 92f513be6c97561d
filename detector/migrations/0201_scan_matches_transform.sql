-- Which query variant of the upload matched (detector.variants): 'original', a dihedral transform
-- ('mirror_h', 'rot90', ...), 'trimmed' or a quirk-compatible hash ('compat_cmyk', ...).
ALTER TABLE scan_matches ADD COLUMN transform text NOT NULL DEFAULT 'original';
