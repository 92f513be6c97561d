-- The probing detector's memory (detector/probing_store.py): each distinct hash one key sent that
-- matched a list entry, within the detector's window (older rows are deleted as the key calls
-- again). Near a listed entry by construction, so as confidential as the evidence.
CREATE TABLE probe_queries (
    api_key_id  bigint      NOT NULL REFERENCES api_keys (id),
    tool        text        NOT NULL,
    entry_row   bigint      NOT NULL,
    query       bytea       NOT NULL,
    distance    integer     NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key_id, tool, entry_row, query)
);

CREATE INDEX probe_queries_seen_at ON probe_queries (seen_at);
