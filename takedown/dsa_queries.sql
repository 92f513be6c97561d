-- Named queries of the DSA Transparency Database outbox (takedown.dsa_store).

-- name: insert_dsa_submission
-- In the transaction that issues the statement; a statement is queued once.
INSERT INTO dsa_submissions (statement_id, ticket_id, puid, body) VALUES ($1, $2, $3, $4::jsonb)
ON CONFLICT DO NOTHING;

-- name: claim_dsa_submissions
-- Due pending rows, oldest first; next_attempt_at moves forward by the lease first, so a process
-- that dies mid-call leaves the rows to whichever replica runs next (which asks the database
-- whether it holds them before sending again).
UPDATE dsa_submissions s
SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
WHERE s.id IN (
    SELECT c.id FROM dsa_submissions c
    WHERE c.state = 'pending' AND c.next_attempt_at <= now()
    ORDER BY c.next_attempt_at, c.id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
RETURNING s.id, s.puid, s.body::text AS body, s.attempts;

-- name: mark_dsa_submitted
UPDATE dsa_submissions
SET state = 'submitted', submitted_at = now(), last_status = $2, db_uuid = $3, last_error = NULL, errors = NULL
WHERE id = $1 AND state = 'pending';

-- name: mark_dsa_submitted_many
-- One statement for a whole accepted batch: ids $1 with the database's uuids $3 (NULL where none came back).
UPDATE dsa_submissions s
SET state = 'submitted', submitted_at = now(), last_status = $2, db_uuid = u.db_uuid, last_error = NULL, errors = NULL
FROM unnest($1::bigint[], $3::text[]) AS u (id, db_uuid)
WHERE s.id = u.id AND s.state = 'pending';

-- name: mark_dsa_rejected
UPDATE dsa_submissions SET state = 'failed', last_status = $2, last_error = $3, errors = $4::jsonb
WHERE id = $1 AND state = 'pending';

-- name: mark_dsa_retry
-- $4: seconds until the next attempt; $5: whether this attempt counts (false: the row was only
-- held back by another statement in its batch).
UPDATE dsa_submissions
SET last_status = $2, last_error = $3, next_attempt_at = now() + make_interval(secs => $4),
    attempts = CASE WHEN $5 THEN attempts ELSE greatest(attempts - 1, 0) END
WHERE id = $1 AND state = 'pending';

-- name: retry_dsa_failed
-- Put rejected rows back (after the statement or the schema was corrected); $1 NULL: every one.
UPDATE dsa_submissions SET state = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL
WHERE state = 'failed' AND ($1::uuid IS NULL OR ticket_id = $1)
RETURNING id;

-- name: dsa_counts
SELECT state::text AS state, count(*) AS n, min(created_at) AS oldest FROM dsa_submissions GROUP BY state;

-- name: dsa_submissions_list
SELECT id, ticket_id, puid, state::text AS state, attempts, last_status, last_error, errors::text AS errors, db_uuid,
       created_at, submitted_at, next_attempt_at
FROM dsa_submissions
WHERE ($1::dsa_submission_state IS NULL OR state = $1::dsa_submission_state)
ORDER BY id LIMIT $2;
