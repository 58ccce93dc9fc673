-- NOT RUNNABLE: Watershed does not support unbounded Top-N / deduplication (ROW_NUMBER without a window, keeping the last row) yet.
-- Nexmark q18, find last bid: the latest bid of each bidder on each auction.

CREATE TABLE nexmark_q18 (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  `dateTime` TIMESTAMP(3), extra STRING
) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q18
SELECT auction, bidder, price, channel, url, `dateTime`, extra
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY `dateTime` DESC)
             AS rank_number
      FROM bid)
WHERE rank_number <= 1;
