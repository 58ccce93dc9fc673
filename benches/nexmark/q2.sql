-- Nexmark q2, selection: the bids on every 123rd auction. (Flink writes
-- MOD(auction, 123); Watershed has no MOD function yet, so `%`.)
CREATE TABLE nexmark_q2 (auction BIGINT, price BIGINT) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q2
SELECT auction, price FROM bid WHERE auction % 123 = 0;
