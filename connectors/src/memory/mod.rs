//! In-memory connectors for the embedded API and tests (`'connector' = 'memory'`):
//! a bounded source over batches held in memory, an unbounded source fed live
//! through a channel, a sink that sends batches into
//! a bounded channel (with backpressure), and a sink that collects batches.

mod channel;
mod collect;
mod source;
mod stream_source;

pub use channel::ChannelSinkFactory;
pub use collect::CollectSinkFactory;
pub use source::MemorySourceFactory;
pub use stream_source::StreamSourceFactory;

/// The connector's name in `'connector' = '...'`.
pub const IDENTIFIER: &str = "memory";
