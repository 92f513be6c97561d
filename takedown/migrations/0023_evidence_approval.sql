-- Which approval (or local allowance) the matching tool ran under, copied from the match like the
-- rest of the evidence. No foreign key: the tool registry's tables come later in the sequence,
-- and the evidence must survive changes there.
ALTER TABLE ticket_evidence
    ADD COLUMN approval_id      bigint,
    ADD COLUMN approval_reason  text;
