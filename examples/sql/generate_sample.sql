-- Regenerates examples/data/payments.csv (the sample file of risk_rules.sql):
--   cargo run --release -- run examples/sql/generate_sample.sql
-- then move the part file under out/sample/ to examples/data/payments.csv.

CREATE TABLE generated (
  txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, account_id BIGINT,
  merchant_id BIGINT, mcc STRING, country STRING, amount DECIMAL(18, 2),
  currency STRING, status STRING
) WITH ('connector' = 'payments', 'number-of-rows' = '20000', 'cards' = '300',
        'events-per-second-event-time' = '20', 'seed' = '2024');

CREATE TABLE sample (
  txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, account_id BIGINT,
  merchant_id BIGINT, mcc STRING, country STRING, amount DECIMAL(18, 2),
  currency STRING, status STRING
) WITH ('connector' = 'filesystem', 'path' = 'out/sample', 'format' = 'csv');

INSERT INTO sample SELECT * FROM generated;
