-- What an operator or the probing detector has set on one API key, beside the key itself:
-- whether its scan and lookup answers carry distances, its own rate limit, and a suspension.
-- A key without a row has the defaults: no distances, the settings' rate, not suspended.
CREATE TABLE key_controls (
    key_id              bigint PRIMARY KEY REFERENCES api_keys (id),
    distances_granted   boolean          NOT NULL DEFAULT false,
    rate_per_s          double precision CHECK (rate_per_s IS NULL OR rate_per_s >= 0),
    burst               integer          CHECK (burst IS NULL OR burst >= 1),
    suspended_at        timestamptz,
    suspended_by        text,
    suspended_reason    text,
    updated_at          timestamptz      NOT NULL DEFAULT now()
);
