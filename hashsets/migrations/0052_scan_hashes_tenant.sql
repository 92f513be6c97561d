-- Upload hashes kept for look-back belong to the tenant whose key scanned, so what a re-check
-- finds is recorded (and ticketed) in that tenant. Rows from before tenants existed belong to
-- the default tenant (id 1, migration 0050), as does a row that names none; hashsets.uploads
-- always names the scan's tenant.
ALTER TABLE scan_hashes ADD COLUMN tenant_id bigint NOT NULL DEFAULT 1 REFERENCES tenants (id);
