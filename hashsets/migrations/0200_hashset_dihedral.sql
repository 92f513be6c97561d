-- Whether scans match this list's entries under the dihedral query variants (mirrored and rotated
-- copies, detector.variants). On by default; off for a list whose issuer already added the dihedral
-- hashes of every picture (hashguard hashsets dihedral NAME off). The hashsets trigger bumps the
-- generation, so every replica reloads with the new setting.
ALTER TABLE hashsets ADD COLUMN dihedral boolean NOT NULL DEFAULT true;
