-- Hotline reports filed by hashguard itself (NCMEC CyberTipline first). One row per confirmed
-- item and hotline, ever: the unique index is what stops the same item being filed twice, across
-- requests, crashes and replicas (a second request answers this row). The filing job claims a row
-- with FOR UPDATE SKIP LOCKED and a lease (lease_token, lease_expires_at), so two replicas never
-- run one report at once; hotline_reference is written the moment /submit answers, so a process
-- killed between calls leaves a row that says which CyberTipline report is open, and the next run
-- retracts it (or learns it was finished: 5102) before filing again. Case records: no media, only
-- the uploaded file's own hashes and the ids the hotline gave.
CREATE TYPE hotline_report_status AS ENUM ('queued', 'submitting', 'finished', 'failed', 'retracted');

CREATE TABLE hotline_reports (
    id                 uuid                  PRIMARY KEY,
    ticket_id          uuid                  NOT NULL REFERENCES tickets (id),
    hotline            text                  NOT NULL,
    status             hotline_report_status NOT NULL DEFAULT 'queued',
    hotline_reference  text,                 -- the CyberTipline report id of the open or finished report
    file_ids           text[]                NOT NULL DEFAULT '{}',
    evidence           text,                 -- 'file' (uploaded and checked) or why the report is hash-only
    attempts           integer               NOT NULL DEFAULT 0,
    last_error         text,
    last_code          integer,
    last_request_id    text,
    next_attempt_at    timestamptz           NOT NULL DEFAULT now(),
    lease_token        uuid,
    lease_expires_at   timestamptz,
    requested_by       text                  NOT NULL,
    requested_key_id   bigint                REFERENCES api_keys (id),
    created_at         timestamptz           NOT NULL DEFAULT now(),
    updated_at         timestamptz           NOT NULL DEFAULT now(),
    finished_at        timestamptz
);
CREATE UNIQUE INDEX hotline_reports_once ON hotline_reports (ticket_id, hotline);
CREATE INDEX hotline_reports_due ON hotline_reports (next_attempt_at) WHERE status IN ('queued', 'submitting');

-- Every call to a hotline: which, for which report, what it answered, and its Request-ID (what the
-- hotline's support asks for). Kept with the report (a case record, no evidence in it).
CREATE TABLE hotline_report_calls (
    id            bigserial   PRIMARY KEY,
    report_id     uuid        NOT NULL REFERENCES hotline_reports (id),
    call          text        NOT NULL,
    reference     text,
    http_status   integer,
    code          integer,
    request_id    text,
    error         text,
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hotline_report_calls_report ON hotline_report_calls (report_id, id);

-- The uploaded file's own hashes as the scan computed them (tool -> value): what a report names
-- and what a fetched evidence file is checked against. Never a list entry's hash (though an exact
-- match's digest equals one, it is this file's). Purged with the ticket's evidence.
CREATE TABLE ticket_upload_hashes (
    ticket_id    uuid        NOT NULL REFERENCES tickets (id),
    scan_id      uuid        NOT NULL,
    tool         text        NOT NULL,
    value        bytea       NOT NULL,
    observed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ticket_id, scan_id, tool)
);

-- Uploader details a platform sent with a scan or notice (account, screen name, upload IP and
-- port, upload time): case evidence for personOrUserReported / ipCaptureEvent, purged with the
-- ticket's evidence.
CREATE TABLE ticket_uploaders (
    id           bigserial   PRIMARY KEY,
    ticket_id    uuid        NOT NULL REFERENCES tickets (id),
    account_id   text,
    screen_name  text,
    upload_ip    inet,
    upload_port  integer     CHECK (upload_port BETWEEN 1 AND 65535),
    upload_time  timestamptz,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ticket_uploaders_ticket ON ticket_uploaders (ticket_id, id);

-- What the reviewer recorded with a decision for the hotline report: whether a person viewed the
-- file (and its EXIF: never without the file), an escalation reason, viral / potential-meme marks,
-- the NCA priority (P1-P3) and the reviewer's IWF category / ICCAM verdict.
ALTER TABLE ticket_decisions
    ADD COLUMN file_viewed     boolean NOT NULL DEFAULT false,
    ADD COLUMN exif_viewed     boolean NOT NULL DEFAULT false,
    ADD COLUMN escalate        text,
    ADD COLUMN viral           boolean NOT NULL DEFAULT false,
    ADD COLUMN potential_meme  boolean NOT NULL DEFAULT false,
    ADD COLUMN uk_priority     smallint CHECK (uk_priority BETWEEN 1 AND 3),
    ADD COLUMN iwf_category    text CHECK (iwf_category IN ('A', 'B', 'C')),
    ADD COLUMN iccam_verdict   text CHECK (iccam_verdict IN ('baseline', 'national', 'not_illegal')),
    ADD CONSTRAINT ticket_decisions_exif_needs_file CHECK (file_viewed OR NOT exif_viewed);
