-- NOT RUNNABLE: Watershed does not support regular joins of two streams (the bid must fall between the auction's start and its expires column, which is not a time attribute), and aggregates over an updating result yet.
-- Nexmark q4, average price for a category: per category, the average
-- winning price of its auctions.

CREATE TABLE nexmark_q4 (id BIGINT, final BIGINT) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q4
SELECT Q.category, AVG(Q.final)
FROM (
  SELECT MAX(B.price) AS final, A.category
  FROM auction A, bid B
  WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
  GROUP BY A.id, A.category
) Q
GROUP BY Q.category;
