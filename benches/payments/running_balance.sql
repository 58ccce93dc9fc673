-- Running balance: per account, the approved total and count, updated with
-- every payment (an updating aggregate; its changelog goes to the sink).
CREATE TABLE balances (account_id BIGINT, balance DECIMAL(38, 2), payments BIGINT)
WITH ('connector' = 'blackhole');

INSERT INTO balances
SELECT account_id, SUM(amount), COUNT(*) FROM payments WHERE status = 'APPROVED'
GROUP BY account_id;
