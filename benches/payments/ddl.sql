-- Generated card payments for the payments risk suite. The bench runner
-- replaces ${EVENTS_NUM}.
CREATE TABLE payments (
  txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, account_id BIGINT,
  merchant_id BIGINT, mcc STRING, country STRING, amount DECIMAL(18, 2),
  currency STRING, status STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'payments', 'number-of-rows' = '${EVENTS_NUM}', 'cards' = '100000',
        'events-per-second-event-time' = '1000', 'seed' = '7');
