//! Event-time windows: assigning rows to windows and aggregating per window.
//!
//! Window TVFs add `window_start`, `window_end` (exclusive) and `window_time`
//! (`window_end - 1 ms`) columns, as Flink's do. A window fires once, when the
//! watermark reaches `window_end - 1`; a row whose window has fired is late.

pub mod aggregate;
pub mod output;
pub mod session;
pub mod slice_aggregate;
pub mod slice_store;
pub mod slicing;
pub mod top_n;
pub mod tumble;

#[cfg(test)]
pub(crate) mod test_support;

pub use aggregate::WindowAggregate;
pub use output::{WindowOutput, WindowOutputColumn};
pub use slice_aggregate::SlicedWindowAggregate;
pub use slicing::SliceSpec;
pub use tumble::TumbleAssigner;

/// The names of the columns a window TVF appends, in order.
pub const WINDOW_COLUMNS: [&str; 3] = ["window_start", "window_end", "window_time"];

/// True when a window ending at `window_end` (exclusive) has fired at `watermark`.
pub fn window_fired(window_end: i64, watermark: i64) -> bool {
    window_end.saturating_sub(1) <= watermark
}
