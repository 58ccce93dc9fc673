-- Three payment-risk rules over the bundled sample file (examples/data/payments.csv,
-- 20,000 payments). Run from the repository root:
--   cargo run --release -- run examples/sql/risk_rules.sql
-- Each INSERT INTO is a job of its own; the three run side by side.

CREATE TABLE payments (
  txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, account_id BIGINT,
  merchant_id BIGINT, mcc STRING, country STRING, amount DECIMAL(18, 2),
  currency STRING, status STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'filesystem', 'path' = 'examples/data/payments.csv', 'format' = 'csv');

-- 1. Large-amount alert: every payment of 10,000.00 or more.
CREATE TABLE large_amounts (txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT,
  country STRING, amount DECIMAL(18, 2))
WITH ('connector' = 'filesystem', 'path' = 'out/large_amounts', 'format' = 'json');

INSERT INTO large_amounts
SELECT txn_id, event_time, card_id, country, amount FROM payments WHERE amount >= 10000;

-- 2. Card velocity: more than 3 payments on one card within a minute.
CREATE TABLE card_velocity (window_start TIMESTAMP(3), window_end TIMESTAMP(3),
  card_id BIGINT, txns BIGINT, total DECIMAL(38, 2))
WITH ('connector' = 'filesystem', 'path' = 'out/card_velocity', 'format' = 'csv');

INSERT INTO card_velocity
SELECT window_start, window_end, card_id, COUNT(*), SUM(amount)
FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, card_id
HAVING COUNT(*) > 3;

-- 3. Decline spike: per country and 5 minutes, the share of declined payments.
CREATE TABLE decline_rate (window_start TIMESTAMP(3), window_end TIMESTAMP(3),
  country STRING, payments BIGINT, declines BIGINT, decline_rate DOUBLE)
WITH ('connector' = 'print', 'print-identifier' = 'declines');

INSERT INTO decline_rate
SELECT window_start, window_end, country, COUNT(*),
       COUNT(*) FILTER (WHERE status = 'DECLINED'),
       CAST(COUNT(*) FILTER (WHERE status = 'DECLINED') AS DOUBLE) / COUNT(*)
FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '5' MINUTES))
GROUP BY window_start, window_end, country
HAVING CAST(COUNT(*) FILTER (WHERE status = 'DECLINED') AS DOUBLE) / COUNT(*) > 0.15;
