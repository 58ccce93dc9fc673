-- Large-amount alert: every payment of 10,000.00 or more.
CREATE TABLE large_amounts (txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT,
  country STRING, amount DECIMAL(18, 2)) WITH ('connector' = 'blackhole');

INSERT INTO large_amounts
SELECT txn_id, event_time, card_id, country, amount FROM payments WHERE amount >= 10000;
