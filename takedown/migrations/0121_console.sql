-- The console's records: previews platforms supply, every exposure of a person to material
-- (each reveal step), leads' overrides of the daily exposure limit, and escalations.

-- A preview of the content a platform offers for a ticket (a URL on its own service; hashguard
-- never fetches or keeps media). Purged with the ticket's evidence (trigger below).
CREATE TABLE ticket_previews (
    id           bigserial   PRIMARY KEY,
    ticket_id    uuid        NOT NULL REFERENCES tickets (id),
    url          text        NOT NULL,
    api_key_id   bigint      REFERENCES api_keys (id),
    supplied_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ticket_previews_ticket ON ticket_previews (ticket_id, id);

CREATE FUNCTION ticket_previews_purge() RETURNS trigger AS $$
BEGIN
    DELETE FROM ticket_previews WHERE ticket_id = NEW.id;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER tickets_purge_previews AFTER UPDATE OF evidence_purged_at ON tickets
    FOR EACH ROW WHEN (NEW.evidence_purged_at IS NOT NULL AND OLD.evidence_purged_at IS NULL)
    EXECUTE FUNCTION ticket_previews_purge();

-- Every reveal step a person took on a preview: who (their staff key), when, which item, how far.
-- Kept as long as the case (a record of exposure, which staff wellbeing and "fileViewedByEsp" read).
CREATE TABLE console_reveals (
    id          bigserial   PRIMARY KEY,
    ticket_id   uuid        NOT NULL REFERENCES tickets (id),
    preview_id  bigint      NOT NULL,   -- no FK: previews are purged, the record of exposure stays
    key_id      bigint      NOT NULL REFERENCES api_keys (id),
    step        smallint    NOT NULL CHECK (step BETWEEN 1 AND 3),
    revealed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_reveals_person_day ON console_reveals (key_id, revealed_at);
CREATE INDEX console_reveals_ticket ON console_reveals (ticket_id, preview_id);

-- A lead's grant of more reveals to one person for one day (UTC), with the reason.
CREATE TABLE exposure_overrides (
    id          bigserial   PRIMARY KEY,
    key_id      bigint      NOT NULL REFERENCES api_keys (id),
    day         date        NOT NULL,
    extra       integer     NOT NULL CHECK (extra BETWEEN 1 AND 100),
    reason      text        NOT NULL,
    granted_by  text        NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX exposure_overrides_person_day ON exposure_overrides (key_id, day);

-- A reviewer's escalation of a ticket to a lead (the ticket goes back to the queue, flagged).
CREATE TABLE ticket_escalations (
    id            bigserial   PRIMARY KEY,
    ticket_id     uuid        NOT NULL REFERENCES tickets (id),
    reason        text        NOT NULL,
    escalated_by  text        NOT NULL,
    escalated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ticket_escalations_ticket ON ticket_escalations (ticket_id);
