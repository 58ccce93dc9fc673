-- Nexmark q7, highest bid: the bids with the highest price of their 10-second
-- tumbling window. Flink joins the bids with the windows' maxima by price and
-- a time range (a regular join); Watershed writes it as a window join of the
-- windowed bids with the window maxima, which gives the same rows.
CREATE TABLE nexmark_q7 (
  auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3), extra STRING
) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q7
SELECT B.auction, B.bidder, B.price, B.`dateTime`, B.extra
FROM (
  SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
) B
JOIN (
  SELECT MAX(price) AS maxprice, window_start, window_end
  FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
  GROUP BY window_start, window_end
) B1
ON B.window_start = B1.window_start AND B.window_end = B1.window_end
   AND B.price = B1.maxprice;
