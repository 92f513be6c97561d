-- Staff accounts for the console, and their sessions. A person signs in with an e-mail address
-- and a password (Argon2id hash only); every account is backed by an api_keys row of the same
-- role whose secret was never kept, so leases, decisions, tenant limits and role checks treat a
-- signed-in person exactly as a staff key: one identity, one set of rules.
CREATE TABLE staff_users (
    id                   bigserial   PRIMARY KEY,
    email                text        NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 320),
    key_id               bigint      NOT NULL UNIQUE REFERENCES api_keys (id),
    password_hash        text        NOT NULL,
    failed_count         integer     NOT NULL DEFAULT 0,
    locked_until         timestamptz,
    disabled_at          timestamptz,
    -- The person's own choice: never offer previews of material at all.
    previews_off         boolean     NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT now(),
    password_changed_at  timestamptz NOT NULL DEFAULT now()
);

-- Sessions: only a SHA-256 of the cookie's 256-bit token is stored. A session ends when revoked
-- (sign-out, account disabled, password reset), after HASHGUARD_CONSOLE_IDLE_MIN without a
-- request, or HASHGUARD_CONSOLE_SESSION_H after sign-in.
CREATE TABLE staff_sessions (
    token_hash          bytea       PRIMARY KEY,
    user_id             bigint      NOT NULL REFERENCES staff_users (id),
    csrf_token          text        NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_seen_at        timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    -- Start of the current stretch of continuous review (reset after a pause): the break reminder.
    stretch_started_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at          timestamptz
);
CREATE INDEX staff_sessions_user ON staff_sessions (user_id) WHERE revoked_at IS NULL;
