-- Look back (HASHGUARD_LOOKBACK_DAYS, off by default): the hashes of recent uploads, kept only
-- while the setting asks and for that many days, so hashes a new list version adds can be checked
-- against content already scanned. These are hashes of users' uploads, innocent ones included:
-- personal data, purged by age.
CREATE TABLE scan_hashes (
    scan_id      uuid        NOT NULL,
    content_id   text        NOT NULL,
    content_url  text,
    api_key_id   bigint,
    tool         text        NOT NULL,
    hash         bytea       NOT NULL,
    scanned_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scan_hashes_tool_time ON scan_hashes (tool, scanned_at);
CREATE INDEX scan_hashes_time ON scan_hashes (scanned_at);
