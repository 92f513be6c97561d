-- Tickets belong to a tenant (migration 0050): a platform's content ids are its own names, so a
-- ticket is (tenant, content_id) and two tenants' uploads named alike never meet in one ticket.
-- Notices, evidence, decisions, statements, appeals and outbox rows hang off their ticket and are
-- scoped through it. Tickets from before tenants existed belong to the default tenant (id 1); new
-- ones must name theirs (the column default goes once existing rows are filled).
ALTER TABLE tickets ADD COLUMN tenant_id bigint NOT NULL DEFAULT 1 REFERENCES tenants (id);
ALTER TABLE tickets ALTER COLUMN tenant_id DROP DEFAULT;

DROP INDEX tickets_one_live_per_content;
CREATE UNIQUE INDEX tickets_one_live_per_content ON tickets (tenant_id, content_id)
    WHERE state NOT IN ('dismissed', 'reinstated', 'closed');
CREATE INDEX tickets_tenant ON tickets (tenant_id, received_at);
