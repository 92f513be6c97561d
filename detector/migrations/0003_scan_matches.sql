-- Evidence of each match found by a scan or lookup: never the media, never the uploaded file's
-- hashes, only which list entry matched, by which tool, at what distance. List details are
-- copied so the record survives later list changes.
CREATE TABLE scan_matches (
    id               bigserial PRIMARY KEY,
    scan_id          uuid        NOT NULL,
    content_id       text        NOT NULL,
    content_url      text,
    hash_entry_id    bigint      NOT NULL,
    hashset          text        NOT NULL,
    hashset_version  integer     NOT NULL,
    entry_id         text        NOT NULL,
    tool             text        NOT NULL,
    tool_version     text        NOT NULL,
    distance         integer     NOT NULL,
    api_key_id       bigint      REFERENCES api_keys (id),
    scanned_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX scan_matches_content ON scan_matches (content_id);
CREATE INDEX scan_matches_scanned_at ON scan_matches (scanned_at);
