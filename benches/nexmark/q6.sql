-- NOT RUNNABLE: Watershed does not support OVER aggregations (ROWS BETWEEN 10 PRECEDING AND CURRENT ROW) over an updating Top-1; Flink cannot run it either yet.
-- Nexmark q6, average selling price by seller: per seller, the average
-- winning price of its last 10 closed auctions.

CREATE TABLE nexmark_q6 (seller BIGINT, avg_price BIGINT) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q6
SELECT Q.seller,
       AVG(Q.price) OVER (PARTITION BY Q.seller ORDER BY Q.`dateTime`
                          ROWS BETWEEN 10 PRECEDING AND CURRENT ROW)
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY A.id, A.seller ORDER BY B.price DESC) AS rownum
  FROM (SELECT A.id, A.seller, B.price, B.`dateTime`
        FROM auction AS A, bid AS B
        WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires)
  WHERE rownum <= 1
) AS Q;
