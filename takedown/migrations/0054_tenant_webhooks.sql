-- Each tenant's own webhook for platform actions: where its tickets' actions go, signed with its
-- own secret. The default tenant without a row here uses HASHGUARD_WEBHOOK_URL and
-- HASHGUARD_WEBHOOK_SECRET, so an install from before tenants keeps delivering as it did; any
-- other tenant without a row keeps its actions in the outbox until it has one. The secret is an
-- HMAC key that must be read to sign, so it is stored as given: protect the database accordingly.
CREATE TABLE tenant_webhooks (
    tenant_id   bigint      PRIMARY KEY REFERENCES tenants (id),
    url         text        NOT NULL,
    secret      text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
