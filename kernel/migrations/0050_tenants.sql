-- Tenants: the platforms one hashguard serves (a hotline or a cooperative runs one for many).
-- Every platform key belongs to exactly one tenant, and the records a platform's calls create
-- (evidence, tickets, notices, ...) carry that tenant, so one platform never reaches another's.
-- An install that never creates a tenant runs entirely in the 'default' one, created here as
-- the first row (id 1, which kernel.keys.DEFAULT_TENANT_ID names and later migrations use as
-- the tenant of rows written before tenants existed).
CREATE TABLE tenants (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenants (name) VALUES ('default');
DO $$ BEGIN
    IF (SELECT id FROM tenants WHERE name = 'default') <> 1 THEN
        RAISE EXCEPTION 'the default tenant must be id 1';
    END IF;
END $$;

-- A platform key's tenant (NOT NULL for platform keys, NULL for staff keys); existing platform
-- keys join the default tenant.
ALTER TABLE api_keys ADD COLUMN tenant_id bigint REFERENCES tenants (id);
UPDATE api_keys SET tenant_id = 1 WHERE role = 'platform';
ALTER TABLE api_keys ADD CONSTRAINT api_keys_platform_tenant CHECK ((role = 'platform') = (tenant_id IS NOT NULL));
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- Staff keys limited to some tenants: one row per tenant the key may see. A staff key with no
-- rows here sees every tenant (how every staff key existing before tenants keeps working).
CREATE TABLE api_key_tenants (
    key_id     bigint NOT NULL REFERENCES api_keys (id),
    tenant_id  bigint NOT NULL REFERENCES tenants (id),
    PRIMARY KEY (key_id, tenant_id)
);
