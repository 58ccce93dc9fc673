//! Embedding Watershed: register in-memory batches, run a windowed query, and
//! read the results into Rust values (amounts as `rust_decimal::Decimal`).
//!
//! `cargo run --example embedded`

use futures::StreamExt;
use rust_decimal::Decimal;
use watershed::StreamContext;
use watershed::connectors::payments::{PaymentsConfig, PaymentsGenerator};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Any RecordBatches will do; here they come from the payments generator.
    let mut generator = PaymentsGenerator::with_full_schema(PaymentsConfig {
        cards: 20,
        ..PaymentsConfig::bounded(10_000)
    })?;
    let mut batches = Vec::new();
    while let Some(batch) = generator.next_batch(4096)? {
        batches.push(batch);
    }

    let ctx = StreamContext::new();
    // Event time is `event_time`, out of order by at most 5 seconds.
    ctx.register_batches(
        "payments",
        generator.schema(),
        batches,
        Some(("event_time", 5_000)),
    )?;

    let mut results = ctx
        .sql(
            "SELECT window_start, card_id, COUNT(*) AS txns, SUM(amount) AS total
             FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
             GROUP BY window_start, window_end, card_id
             HAVING COUNT(*) >= 5",
        )
        .await?
        .execute_stream()?;

    let mut windows = 0;
    let mut largest = Decimal::ZERO;
    while let Some(batch) = results.next().await {
        for row in watershed::rows::rows(&batch?) {
            windows += 1;
            let total: Decimal = row.get("total")?.unwrap_or_default();
            largest = largest.max(total);
        }
    }
    println!("{windows} busy card-minutes; the largest total was {largest}");
    Ok(())
}
