-- Vetted hash lists. A list has versions; an import creates a version holding all its entries,
-- and the list's current version is what the detector loads.
CREATE TYPE hashset_status AS ENUM ('active', 'shadow', 'disabled');

CREATE TABLE hashsets (
    id          serial PRIMARY KEY,
    name        text           NOT NULL UNIQUE,
    tool        text           NOT NULL,
    source      text           NOT NULL DEFAULT '',
    status      hashset_status NOT NULL DEFAULT 'active',
    is_demo     boolean        NOT NULL DEFAULT false,
    created_at  timestamptz    NOT NULL DEFAULT now()
);

CREATE TABLE hashset_versions (
    id           serial PRIMARY KEY,
    hashset_id   integer     NOT NULL REFERENCES hashsets (id) ON DELETE CASCADE,
    version      integer     NOT NULL,
    entry_count  bigint      NOT NULL,
    file_sha256  bytea       NOT NULL,
    imported_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (hashset_id, version)
);

ALTER TABLE hashsets ADD COLUMN current_version_id integer REFERENCES hashset_versions (id);

CREATE TABLE hash_entries (
    id          bigserial PRIMARY KEY,
    version_id  integer NOT NULL REFERENCES hashset_versions (id) ON DELETE CASCADE,
    entry_id    text    NOT NULL,   -- the issuer's id; never the hash itself
    hash        bytea   NOT NULL,   -- confidential: never returned by an API or logged
    category    text,
    UNIQUE (version_id, entry_id)
);

-- Wakes every replica when a list changes (see the detector's index loader).
CREATE FUNCTION notify_hashsets_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hashguard_hashsets', '');
    RETURN NULL;
END $$;

CREATE TRIGGER hashsets_changed AFTER INSERT OR UPDATE OR DELETE ON hashsets
    FOR EACH STATEMENT EXECUTE FUNCTION notify_hashsets_changed();
