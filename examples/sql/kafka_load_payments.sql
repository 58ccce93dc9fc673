-- Loads 200,000 generated payments into the Kafka topic `payments` (one CSV
-- message per payment, spread over its partitions). See README "Kafka".

CREATE TABLE generated (
  txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, account_id BIGINT,
  merchant_id BIGINT, mcc STRING, country STRING, amount DECIMAL(18, 2),
  currency STRING, status STRING
) WITH (
  'connector' = 'payments',
  'number-of-rows' = '200000',
  'cards' = '20000',
  'seed' = '7'
);

CREATE TABLE payments_topic (
  txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, account_id BIGINT,
  merchant_id BIGINT, mcc STRING, country STRING, amount DECIMAL(18, 2),
  currency STRING, status STRING
) WITH (
  'connector' = 'kafka',
  'topic' = 'payments',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'format' = 'csv',
  'key.format' = 'raw',
  'key.fields' = 'currency'
);

INSERT INTO payments_topic SELECT * FROM generated;
