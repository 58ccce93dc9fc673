-- The Nexmark tables: people, auctions and bids of one event sequence (the
-- nexmark/nexmark repository declares one `datagen` table with ROW columns
-- and three views; Watershed has no ROW type, so each view is a table of the
-- `nexmark` connector with 'nexmark.table'). The bench runner replaces
-- ${EVENTS_NUM} and ${TPS}.

CREATE TABLE person (
  id BIGINT, name STRING, emailAddress STRING, creditCard STRING, city STRING,
  state STRING, `dateTime` TIMESTAMP(3), extra STRING,
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'nexmark.table' = 'person',
        'first-event.rate' = '${TPS}', 'next-event.rate' = '${TPS}',
        'events.num' = '${EVENTS_NUM}');

CREATE TABLE auction (
  id BIGINT, itemName STRING, description STRING, initialBid BIGINT,
  reserve BIGINT, `dateTime` TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT,
  category BIGINT, extra STRING,
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'nexmark.table' = 'auction',
        'first-event.rate' = '${TPS}', 'next-event.rate' = '${TPS}',
        'events.num' = '${EVENTS_NUM}');

CREATE TABLE bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  `dateTime` TIMESTAMP(3), extra STRING,
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid',
        'first-event.rate' = '${TPS}', 'next-event.rate' = '${TPS}',
        'events.num' = '${EVENTS_NUM}');
