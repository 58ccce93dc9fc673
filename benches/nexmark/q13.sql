-- Nexmark q13, bounded side input join: each bid with the value of its
-- auction (mod 10000) from a file of 10000 lines. Flink writes a lookup join
-- FOR SYSTEM_TIME AS OF a processing-time attribute; Watershed joins the
-- bounded table (read completely first), which gives the same rows; its join
-- keys are columns, so the bid side computes `MOD(auction, 10000)` first. The
-- runner writes ${SIDE_INPUT} (lines `i,i` for i in 0..9999).
CREATE TABLE side_input (`key` BIGINT, `value` STRING)
WITH ('connector' = 'filesystem', 'path' = '${SIDE_INPUT}', 'format' = 'csv');

CREATE TABLE nexmark_q13 (
  auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3), `value` STRING
) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q13
SELECT B.auction, B.bidder, B.price, B.`dateTime`, S.`value`
FROM (SELECT *, MOD(auction, 10000) AS side_key FROM bid) B
JOIN side_input S ON B.side_key = S.`key`;
