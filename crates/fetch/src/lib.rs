//! marketdb-fetch downloads Binance Vision files (`data.binance.vision`). Main types:
//! [`VisionFile`] (market, dataset, symbol, interval and period of one file, with its URL
//! and its `.CHECKSUM` URL), [`Fetcher`] (one file over HTTP into a private temporary
//! folder, verified against its `.CHECKSUM`, with retries, exponential backoff and jitter
//! on connect errors, timeouts, 5xx answers and truncated bodies) and [`plan`] (which
//! files to ask for, given what is stored and which files Vision is known not to have).
//!
//! Decisions callers can rely on: a 404 is [`Outcome::NotFound`], not an error; a
//! checksum mismatch is retried once, then reported as [`Outcome::ChecksumMismatch`]; a
//! body is never larger than the rows its name allows ([`Error::TooLarge`]), and a `200`
//! that is not a zip is retried like a `5xx` ([`Error::NotAZip`]);
//! a download lives on disk only as long as its [`Downloaded`] (unless a keep folder is
//! configured), because a zip needs seeking and is never held in memory.
//!
//! [`RestClient`] asks the REST API for what Vision does not publish yet (klines and
//! funding rates, one page per request), within the exchange's request-weight budget and
//! its `Retry-After` answers. [`Fetcher::list`] reads the archive's bucket listing (S3
//! ListObjects pages, [`parse_page`]) with the same retries.
//!
//! It deliberately does not parse or store Vision files (that is `marketdb-ingest` and
//! `marketdb-store`, driven by the caller), decide what to fetch from the REST API (the
//! caller pages through ranges), or print.

mod backoff;
mod download;
mod error;
mod layout;
mod listing;
pub mod plan;
mod rest;
#[cfg(test)]
mod test_server;

pub use backoff::Jitter;
pub use download::{Downloaded, Fetch, FetchConfig, FetchStats, Fetcher, Identity, Outcome};
pub use error::{Error, Result};
pub use layout::{DEFAULT_BASE_URL, Market, Period, VisionFile, vision_interval};
pub use listing::{DEFAULT_LISTING_URL, Listing, ListingPage, parse_page};
pub use rest::{RestClient, RestConfig, RestStats};
