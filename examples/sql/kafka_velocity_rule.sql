-- The velocity rule over a topic: more than 5 payments on one card within a
-- minute raises an alert on the topic `alerts`. The payments topic is read to
-- its end offsets at the start (drop 'scan.bounded.mode' to keep reading as a
-- stream). Checkpoints hold each partition's offset: after a crash,
-- `watershed run examples/sql/kafka_velocity_rule.sql --restore latest` goes on
-- where the last checkpoint was. See README "Kafka".

SET 'execution.checkpointing.interval' = '2 s';
SET 'parallelism.default' = '3';  -- one split per partition (each partition has its own watermark at any parallelism)

CREATE TABLE payments (
  txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, account_id BIGINT,
  merchant_id BIGINT, mcc STRING, country STRING, amount DECIMAL(18, 2),
  currency STRING, status STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = 'payments',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'properties.group.id' = 'velocity-rule',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset',
  'format' = 'csv'
);

CREATE TABLE alerts (
  window_end TIMESTAMP(3), card_id BIGINT, payments BIGINT, total DECIMAL(38, 2)
) WITH (
  'connector' = 'kafka',
  'topic' = 'alerts',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'format' = 'json',
  'key.format' = 'csv',
  'key.fields' = 'card_id',
  'sink.delivery-guarantee' = 'at-least-once'
);

INSERT INTO alerts
SELECT window_end, card_id, COUNT(*), SUM(amount)
FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTES))
GROUP BY window_start, window_end, card_id
HAVING COUNT(*) > 5;
