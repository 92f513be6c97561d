-- Named queries of the transparency figures (takedown.transparency_store): each takes the period
-- [$1, $2) and $3, the tenants counted (NULL = every tenant), unless it says otherwise.

-- name: figures_notices
-- Notices by source and content type (DSA Art 15(1)(b)); a hash match is an own-initiative detection.
SELECT n.source::text AS source, coalesce(n.content_type, 'unspecified') AS content_type, count(*) AS n
FROM ticket_notices n JOIN tickets t ON t.id = n.ticket_id
WHERE n.received_at >= $1 AND n.received_at < $2 AND ($3::bigint[] IS NULL OR t.tenant_id = ANY($3::bigint[]))
GROUP BY 1, 2
UNION ALL
SELECT 'hash_match', 'unspecified', count(*) FROM tickets
WHERE source = 'hash_match' AND received_at >= $1 AND received_at < $2 AND ($3::bigint[] IS NULL OR tenant_id = ANY($3::bigint[]))
HAVING count(*) > 0
ORDER BY 1, 2;

-- name: figures_time_to_action
-- Seconds from receipt to the first restriction, per source: count, median and 90th percentile.
SELECT t.source::text AS source, count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t.first_action_at - t.received_at)) AS median_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM t.first_action_at - t.received_at)) AS p90_s
FROM tickets t
WHERE t.first_action_at >= $1 AND t.first_action_at < $2 AND ($3::bigint[] IS NULL OR t.tenant_id = ANY($3::bigint[]))
GROUP BY 1 ORDER BY 1;

-- name: figures_overdue
-- Unlike the others, only $1 (the tenants): tickets awaiting a decision past their due time as the
-- report is made, by source.
SELECT t.source::text AS source, count(*) AS n FROM tickets t
WHERE t.state IN ('open', 'in_review', 'appealed') AND t.due_at < now() AND ($1::bigint[] IS NULL OR t.tenant_id = ANY($1::bigint[]))
GROUP BY 1 ORDER BY 1;

-- name: figures_precision
-- Matches a person reviewed in the period, per tool and per list, and how many of them the person
-- found wrong (dismissed, or reinstated on appeal). A ticket counts once per tool and once per
-- list that matched it; an automated action nobody reviewed is not a reviewed match.
WITH reviewed AS (
    SELECT d.ticket_id, bool_or(d.to_state IN ('dismissed', 'reinstated')) AS wrong
    FROM ticket_decisions d JOIN tickets t ON t.id = d.ticket_id
    WHERE d.decided_at >= $1 AND d.decided_at < $2 AND ($3::bigint[] IS NULL OR t.tenant_id = ANY($3::bigint[]))
      AND t.source = 'hash_match'
      AND ((d.to_state IN ('actioned', 'dismissed') AND NOT d.automated_decision) OR d.to_state IN ('reinstated', 'upheld'))
    GROUP BY d.ticket_id
)
SELECT 'tool' AS kind, x.tool AS name, count(*) AS reviewed, count(*) FILTER (WHERE r.wrong) AS wrong
FROM reviewed r JOIN (SELECT DISTINCT ticket_id, tool FROM ticket_detections) x ON x.ticket_id = r.ticket_id
GROUP BY 1, 2
UNION ALL
SELECT 'list', x.hashset, count(*), count(*) FILTER (WHERE r.wrong)
FROM reviewed r JOIN (SELECT DISTINCT ticket_id, hashset FROM ticket_detections) x ON x.ticket_id = r.ticket_id
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: figures_reports
-- Reports made to hotlines in the period, per hotline, and the median seconds from the ticket's
-- receipt (for a hash match: the match) to the report. The one query the report figures come
-- from. Two records of a report: one hashguard filed itself (hotline_reports, counted when the
-- hotline confirmed it finished) and one filed elsewhere and recorded on the ticket (its
-- 'reported' decision); a ticket reported to one hotline both ways counts once, at the earlier time.
WITH made AS (
    SELECT r.ticket_id, r.hotline, r.finished_at AS at
    FROM hotline_reports r WHERE r.status = 'finished'
    UNION ALL
    SELECT d.ticket_id, d.reported_to, d.decided_at
    FROM ticket_decisions d WHERE d.to_state = 'reported'
), once AS (
    SELECT ticket_id, hotline, min(at) AS at FROM made GROUP BY 1, 2
)
SELECT o.hotline, count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM o.at - t.received_at)) AS median_s
FROM once o JOIN tickets t ON t.id = o.ticket_id
WHERE o.at >= $1 AND o.at < $2
  AND ($3::bigint[] IS NULL OR t.tenant_id = ANY($3::bigint[]))
GROUP BY 1 ORDER BY 1;

-- name: figures_lists_matched
-- The list versions behind the period's matches, with how many tickets each matched.
SELECT x.hashset, x.hashset_version AS version, count(DISTINCT x.ticket_id) AS tickets
FROM ticket_detections x JOIN tickets t ON t.id = x.ticket_id
WHERE t.received_at >= $1 AND t.received_at < $2 AND ($3::bigint[] IS NULL OR t.tenant_id = ANY($3::bigint[]))
GROUP BY 1, 2 ORDER BY 1, 2;

-- name: figures_appeals
-- Appeals (DSA Art 20 complaints) received and decided in the period.
SELECT d.to_state::text AS state, count(*) AS n
FROM ticket_decisions d JOIN tickets t ON t.id = d.ticket_id
WHERE d.to_state IN ('appealed', 'reinstated', 'upheld') AND d.decided_at >= $1 AND d.decided_at < $2
  AND ($3::bigint[] IS NULL OR t.tenant_id = ANY($3::bigint[]))
GROUP BY 1 ORDER BY 1;
