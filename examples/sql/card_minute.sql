-- The bundled example job: per-card velocity over one-minute windows.
-- Payments come from the deterministic generator, so no data file or server is
-- needed; results land as CSV part files under out/card_minute/.

CREATE TABLE payments (
  txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, account_id BIGINT,
  merchant_id BIGINT, mcc STRING, country STRING, amount DECIMAL(18, 2),
  currency STRING, status STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH (
  'connector' = 'payments',
  'number-of-rows' = '2000000',
  'cards' = '50000',
  'seed' = '7'
);

CREATE TABLE card_minute (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), card_id BIGINT,
  txns BIGINT, total DECIMAL(38, 2), max_amount DECIMAL(18, 2)
) WITH ('connector' = 'filesystem', 'path' = 'out/card_minute', 'format' = 'csv');

INSERT INTO card_minute
SELECT window_start, window_end, card_id, COUNT(*), SUM(amount), MAX(amount)
FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTES))
GROUP BY window_start, window_end, card_id;
