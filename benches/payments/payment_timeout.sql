-- Payment time-out: a payment that timed out and was not followed by an
-- approved payment on the same card within a minute (a LEFT interval join
-- whose unmatched rows come out when the watermark passes the minute).
CREATE TABLE payment_timeouts (txn_id BIGINT, card_id BIGINT, event_time TIMESTAMP(3),
  amount DECIMAL(18, 2)) WITH ('connector' = 'blackhole');

INSERT INTO payment_timeouts
SELECT t.txn_id, t.card_id, t.event_time, t.amount
FROM (SELECT * FROM payments WHERE status = 'TIMEOUT') t
LEFT JOIN (SELECT * FROM payments WHERE status = 'APPROVED') r
  ON t.card_id = r.card_id
  AND r.event_time BETWEEN t.event_time AND t.event_time + INTERVAL '1' MINUTE
WHERE r.txn_id IS NULL;
