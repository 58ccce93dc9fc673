-- Nexmark q10, log to file system: every bid with its day and minute, as CSV
-- part files. Deviations: Flink partitions the directory by (dt, hm) with
-- PARTITIONED BY; Watershed writes the two columns into one directory. The runner
-- replaces ${OUTPUT_DIR}.
CREATE TABLE nexmark_q10 (
  auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3), extra STRING,
  dt STRING, hm STRING
) WITH ('connector' = 'filesystem', 'path' = '${OUTPUT_DIR}/q10', 'format' = 'csv');

INSERT INTO nexmark_q10
SELECT auction, bidder, price, `dateTime`, extra,
       DATE_FORMAT(`dateTime`, 'yyyy-MM-dd'), DATE_FORMAT(`dateTime`, 'HH:mm')
FROM bid;
