-- Nexmark q22, get URL directories: the first three directories of each
-- bid's URL. Flink's SPLIT_INDEX(url, '/', 3) (0-based) is DataFusion's
-- split_part(url, '/', 4) (1-based).
CREATE TABLE nexmark_q22 (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING,
  dir1 STRING, dir2 STRING, dir3 STRING
) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q22
SELECT
  auction, bidder, price, channel,
  split_part(url, '/', 4) AS dir1,
  split_part(url, '/', 5) AS dir2,
  split_part(url, '/', 6) AS dir3
FROM bid;
