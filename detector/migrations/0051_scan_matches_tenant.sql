-- Match evidence belongs to the tenant whose key scanned (content ids are unique only within a
-- tenant). Rows from before tenants existed belong to the default tenant (id 1, migration 0050),
-- as does a row that names none; detector.evidence always names the scan's tenant.
ALTER TABLE scan_matches ADD COLUMN tenant_id bigint NOT NULL DEFAULT 1 REFERENCES tenants (id);
DROP INDEX scan_matches_content;
CREATE INDEX scan_matches_content ON scan_matches (tenant_id, content_id);
