//! A payment-risk rule: flag cards with more than 3 payments, or more than
//! 2,000.00 in total, within one minute. Payments come from the deterministic
//! generator, the alerts are printed as they are emitted.
//!
//! `cargo run --example velocity_rule`

use watershed::StreamContext;
use watershed::summary::summary_text;

const RULE: &str = "
CREATE TABLE payments (
  txn_id BIGINT, event_time TIMESTAMP(3), card_id BIGINT, amount DECIMAL(18, 2), status STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND
) WITH ('connector' = 'payments', 'number-of-rows' = '200000', 'cards' = '2000', 'seed' = '1');

CREATE TABLE velocity_alerts (
  window_start TIMESTAMP(3), card_id BIGINT, txns BIGINT, total DECIMAL(38, 2), declines BIGINT
) WITH ('connector' = 'print', 'print-identifier' = 'velocity');

INSERT INTO velocity_alerts
SELECT window_start, card_id, COUNT(*), SUM(amount), COUNT(*) FILTER (WHERE status = 'DECLINED')
FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, card_id
HAVING COUNT(*) > 3 OR SUM(amount) > 2000;
";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ctx = StreamContext::new();
    let job = ctx.sql(RULE).await?;
    println!("{}", job.plan_text().unwrap_or_default());
    let started = std::time::Instant::now();
    let result = job.run().await?;
    eprintln!("{}", summary_text(&result, started.elapsed()));
    Ok(())
}
