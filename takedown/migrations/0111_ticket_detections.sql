-- Which list and tool matched a ticket's content, kept after the evidence purge (which deletes
-- ticket_evidence) so precision per tool and per list (DSA Art 15(1)(e), Reg. 2021/1232's error
-- report) can be recomputed for past periods. Names and versions only: never an entry id or a hash.
-- A trigger copies each evidence row's list and tool as it is written, so no writer has to remember.
CREATE TABLE ticket_detections (
    ticket_id        uuid    NOT NULL REFERENCES tickets (id),
    hashset          text    NOT NULL,
    hashset_version  integer NOT NULL,
    tool             text    NOT NULL,
    PRIMARY KEY (ticket_id, hashset, hashset_version, tool)
);

INSERT INTO ticket_detections (ticket_id, hashset, hashset_version, tool)
SELECT DISTINCT ticket_id, hashset, hashset_version, tool FROM ticket_evidence
ON CONFLICT DO NOTHING;

CREATE FUNCTION ticket_detections_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_detections (ticket_id, hashset, hashset_version, tool)
    VALUES (NEW.ticket_id, NEW.hashset, NEW.hashset_version, NEW.tool)
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END
$$;

CREATE TRIGGER ticket_evidence_detections AFTER INSERT ON ticket_evidence
    FOR EACH ROW EXECUTE FUNCTION ticket_detections_copy();
