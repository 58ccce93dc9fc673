-- Nexmark q14, calculation: bids between 1M and 50M euro cents, with the
-- euro price, a day/night class of the bid's hour and the number of 'c's in
-- extra. Flink calls a Java UDF count_char and HOUR(); Watershed computes the
-- count with length/replace and the hour with EXTRACT.
CREATE TABLE nexmark_q14 (
  auction BIGINT, bidder BIGINT, price DECIMAL(23, 3), bidTimeType STRING,
  `dateTime` TIMESTAMP(3), extra STRING, c_counts BIGINT
) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q14
SELECT
  auction,
  bidder,
  0.908 * price AS price,
  CASE
    WHEN EXTRACT(HOUR FROM `dateTime`) >= 8 AND EXTRACT(HOUR FROM `dateTime`) <= 18 THEN 'dayTime'
    WHEN EXTRACT(HOUR FROM `dateTime`) <= 6 OR EXTRACT(HOUR FROM `dateTime`) >= 20 THEN 'nightTime'
    ELSE 'otherTime'
  END AS bidTimeType,
  `dateTime`,
  extra,
  CAST(length(extra) - length(replace(extra, 'c', '')) AS BIGINT) AS c_counts
FROM bid
WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000;
