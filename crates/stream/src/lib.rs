//! marketdb-stream keeps a store current from Binance's WebSocket kline streams. Main
//! types: [`Streamer`] (connections in, one batching writer out: closed bars only,
//! validated like every other write, committed every few hundred milliseconds; reconnects
//! with backoff and jitter, a planned reconnect before the exchange's 24-hour limit, and
//! REST backfill of every hole between the last stored bar and the first streamed one),
//! [`StreamConfig`] and [`StreamReport`]; [`parse_frame`] (one combined-stream message to
//! a [`KlineEvent`]); [`plan`] (streams per connection); [`replay`] (a loopback server
//! that plays scripts, for tests and the benchmark).
//!
//! It deliberately does not print, install signal handlers (the caller's shutdown future
//! decides when to stop), store open bars, or fetch history beyond the holes it sees
//! (that is `marketdb download`).

mod connection;
mod error;
mod event;
mod latency;
pub mod plan;
pub mod replay;
mod runner;

pub use error::{Error, Result};
pub use event::{Frame, KlineEvent, kline_message, parse_frame, stream_name};
pub use plan::Subscription;
pub use runner::{StreamConfig, StreamReport, Streamer, summary};
