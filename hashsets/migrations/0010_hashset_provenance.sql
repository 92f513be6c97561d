-- Vetted lists: provenance, delta versions, retractions and the false-positive defences.
--
-- Entries are stored once, in the version that added them (hash_entries.version_id). A version's
-- membership is its lineage (its own id and those of the versions it builds on, back to the last
-- full import) minus the entries retracted by any version of that lineage. A 1K-entry delta on a
-- 10M list so writes 1K rows, and a rollback only moves hashsets.current_version_id.

CREATE TYPE hashset_version_kind AS ENUM ('full', 'delta');
CREATE TYPE hashset_signature_status AS ENUM ('verified', 'unsigned');
CREATE TYPE classification_scheme AS ENUM ('iwf', 'ncmec', 'interpol');

-- Public keys trusted to sign the lists of one issuing organisation.
CREATE TABLE trusted_keys (
    id            serial PRIMARY KEY,
    organisation  text        NOT NULL,
    public_key    bytea       NOT NULL CHECK (length(public_key) = 32),  -- raw Ed25519
    fingerprint   text        NOT NULL,
    added_by      text        NOT NULL,
    added_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    UNIQUE (organisation, public_key)
);

ALTER TABLE hashsets ADD COLUMN threshold integer CHECK (threshold >= 0);

ALTER TABLE hashset_versions
    ADD COLUMN kind              hashset_version_kind     NOT NULL DEFAULT 'full',
    ADD COLUMN base_version_id   integer REFERENCES hashset_versions (id),
    ADD COLUMN lineage           integer[]                NOT NULL DEFAULT '{}',
    ADD COLUMN issuer            text                     NOT NULL DEFAULT '',
    ADD COLUMN issuer_version    text,
    ADD COLUMN issued_at         timestamptz,
    ADD COLUMN signature_status  hashset_signature_status NOT NULL DEFAULT 'unsigned',
    ADD COLUMN signer_key_id     integer REFERENCES trusted_keys (id),
    ADD COLUMN manifest          jsonb,                   -- as received; it holds no hash values
    ADD COLUMN imported_by       text                     NOT NULL DEFAULT '',
    ADD COLUMN added_count       bigint                   NOT NULL DEFAULT 0,
    ADD COLUMN retracted_count   bigint                   NOT NULL DEFAULT 0;

UPDATE hashset_versions SET lineage = ARRAY[id], added_count = entry_count;

CREATE UNIQUE INDEX hashset_versions_issuer_version ON hashset_versions (hashset_id, issuer_version);

ALTER TABLE hash_entries ADD COLUMN scheme classification_scheme;

-- Bulk COPY speed (10M entries within a minute): a per-row foreign-key check and a unique text
-- index each double the cost of writing a row. Rows are written only by the import transaction
-- that creates their version, versions are never deleted, and duplicate ids are found by the
-- importer (hashsets/duplicates.py, then one query to name them).
ALTER TABLE hash_entries DROP CONSTRAINT hash_entries_version_id_fkey;
ALTER TABLE hash_entries DROP CONSTRAINT hash_entries_version_id_entry_id_key;
CREATE INDEX hash_entries_version ON hash_entries (version_id);

-- Which entries a version retracts. A row may be retracted in two sibling versions (after a rollback).
CREATE TABLE hash_retractions (
    entry_row   bigint  NOT NULL REFERENCES hash_entries (id) ON DELETE CASCADE,
    version_id  integer NOT NULL REFERENCES hashset_versions (id) ON DELETE CASCADE,
    PRIMARY KEY (entry_row, version_id)
);

-- A disabled entry is keyed by (list, issuer id) and the disabled row, and applies to every row of
-- that list with the same id and hash, so a later full re-import of the same entry stays disabled.
CREATE TABLE hash_entry_disables (
    hashset_id  integer     NOT NULL REFERENCES hashsets (id) ON DELETE CASCADE,
    entry_id    text        NOT NULL,
    entry_row   bigint      NOT NULL REFERENCES hash_entries (id) ON DELETE CASCADE,
    reason      text        NOT NULL CHECK (reason <> ''),
    actor       text        NOT NULL,
    disabled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hashset_id, entry_id, entry_row)
);

-- Hashes of known benign images: they never produce a match, whatever list they collide with.
CREATE TABLE allowlist (
    id         bigserial PRIMARY KEY,
    tool       text        NOT NULL,
    hash       bytea       NOT NULL,   -- a benign image's hash; still never shown back
    reason     text        NOT NULL CHECK (reason <> ''),
    actor      text        NOT NULL,
    added_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tool, hash)
);

-- Entries quarantined for matching far more often than usual: their matches go to review.
CREATE TABLE hash_entry_quarantine (
    entry_row      bigint      PRIMARY KEY REFERENCES hash_entries (id) ON DELETE CASCADE,
    since          timestamptz NOT NULL DEFAULT now(),
    matches_seen   integer     NOT NULL,
    released_at    timestamptz,
    released_by    text
);

-- Reviewers' verdicts that a match was wrong, kept per entry for the issuer.
CREATE TABLE hash_entry_feedback (
    id          bigserial PRIMARY KEY,
    entry_row   bigint      NOT NULL REFERENCES hash_entries (id) ON DELETE CASCADE,
    scan_id     uuid,
    reviewer    text        NOT NULL,
    note        text        NOT NULL DEFAULT '',
    decided_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hash_entry_feedback_entry ON hash_entry_feedback (entry_row);

-- Every change to the lists and their defences: who, when, what. Never a hash value.
CREATE TABLE hashset_events (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text        NOT NULL,
    action   text        NOT NULL,
    hashset  text,
    details  jsonb       NOT NULL DEFAULT '{}'
);

-- What a match was: shadow list (never answered as match), quarantined entry (review, not
-- automatic action), found when new list entries were checked against recent scans.
ALTER TABLE scan_matches
    ADD COLUMN shadow           boolean NOT NULL DEFAULT false,
    ADD COLUMN quarantined      boolean NOT NULL DEFAULT false,
    ADD COLUMN found_on_recheck boolean NOT NULL DEFAULT false;
CREATE INDEX scan_matches_entry_time ON scan_matches (hash_entry_id, scanned_at);

-- One counter for everything that changes what is matched. Replicas compare it with the one
-- their snapshot was built at; the trigger also wakes them through NOTIFY.
CREATE TABLE hashset_generation (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    generation  bigint  NOT NULL
);
INSERT INTO hashset_generation (generation) VALUES (1);

CREATE OR REPLACE FUNCTION notify_hashsets_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE hashset_generation SET generation = generation + 1;
    PERFORM pg_notify('hashguard_hashsets', '');
    RETURN NULL;
END $$;

CREATE TRIGGER hash_entry_disables_changed AFTER INSERT OR UPDATE OR DELETE ON hash_entry_disables
    FOR EACH STATEMENT EXECUTE FUNCTION notify_hashsets_changed();
CREATE TRIGGER allowlist_changed AFTER INSERT OR UPDATE OR DELETE ON allowlist
    FOR EACH STATEMENT EXECUTE FUNCTION notify_hashsets_changed();
