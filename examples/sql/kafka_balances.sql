-- A running balance per account from the payments topic, written to the
-- upsert-kafka table `balances`: each change of an account's row is a message
-- keyed by the account (CSV key, JSON value); compacting the topic by key
-- leaves the current balances. Load the payments first
-- (examples/sql/kafka_load_payments.sql) and create the topic:
--   tansu topic create balances --partitions 2
-- See README "Kafka".

SET 'execution.checkpointing.interval' = '2 s';

CREATE TABLE payments (
  txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, account_id BIGINT,
  merchant_id BIGINT, mcc STRING, country STRING, amount DECIMAL(18, 2),
  currency STRING, status STRING
) WITH (
  'connector' = 'kafka',
  'topic' = 'payments',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'scan.bounded.mode' = 'latest-offset',
  'format' = 'csv'
);

CREATE TABLE balances (
  account_id BIGINT, payments BIGINT, balance DECIMAL(38, 2),
  PRIMARY KEY (account_id) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = 'balances',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'key.format' = 'csv',
  'value.format' = 'json'
);

INSERT INTO balances
SELECT account_id, COUNT(*), SUM(amount)
FROM payments
WHERE status = 'approved'
GROUP BY account_id;
