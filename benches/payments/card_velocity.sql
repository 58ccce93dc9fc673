-- Velocity rule: more than 3 payments on one card within a minute.
CREATE TABLE card_velocity (window_start TIMESTAMP(3), window_end TIMESTAMP(3),
  card_id BIGINT, txns BIGINT, total DECIMAL(38, 2)) WITH ('connector' = 'blackhole');

INSERT INTO card_velocity
SELECT window_start, window_end, card_id, COUNT(*), SUM(amount)
FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, card_id
HAVING COUNT(*) > 3;
