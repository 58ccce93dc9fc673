-- Prints the alerts the velocity rule wrote to the topic `alerts`.

CREATE TABLE alerts (
  window_end TIMESTAMP(3), card_id BIGINT, payments BIGINT, total DECIMAL(38, 2)
) WITH (
  'connector' = 'kafka',
  'topic' = 'alerts',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'scan.bounded.mode' = 'latest-offset',
  'format' = 'json'
);

SELECT * FROM alerts;
