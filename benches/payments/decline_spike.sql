-- Decline spike: per country, over 5 minutes sliding by 1 minute, the share of
-- declined payments when it exceeds 8% (about the generator's average).
CREATE TABLE decline_spike (window_start TIMESTAMP(3), window_end TIMESTAMP(3),
  country STRING, payments BIGINT, declines BIGINT) WITH ('connector' = 'blackhole');

INSERT INTO decline_spike
SELECT window_start, window_end, country, COUNT(*), COUNT(*) FILTER (WHERE status = 'DECLINED')
FROM TABLE(HOP(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE, INTERVAL '5' MINUTES))
GROUP BY window_start, window_end, country
HAVING CAST(COUNT(*) FILTER (WHERE status = 'DECLINED') AS DOUBLE) / COUNT(*) > 0.08;
