//! The audit log: one record per request, written off the request path to daily JSON-lines
//! files (`audit-YYYY-MM-DD.jsonl`) or to PostgreSQL ([`pg`]), with retention. No prompt content;
//! keys only as masked hints.
//!
//! - [`record`]: the [`Record`] and its [`Usage`];
//! - [`pending`]: the record of a request in progress ([`Pending`]), ended exactly once into a
//!   [`Sink`];
//! - [`body`]: the response body that carries the record while the answer streams ([`Audited`]);
//! - [`usage`]: token usage read from JSON bodies and SSE events ([`UsageReader`]);
//! - [`writer`]: the daily files' writer thread and their retention;
//! - [`query`](mod@query): reading the files back for `policy audit`;
//! - [`time`]: times and days (`jiff`), and the one `--since` / `--until` parser;
//! - [`pg`]: the same records in PostgreSQL.
//!
//! This module knows nothing of metrics: `crate::telemetry` feeds ended records to both.

pub mod body;
pub mod pending;
pub mod pg;
pub mod query;
pub mod record;
pub mod time;
pub mod usage;
pub mod writer;

pub use body::Audited;
pub use pending::{Pending, Sink};
pub use query::{Query, query};
pub use record::{Record, Usage, key_hint};
pub use time::{day_number, format_ms, ms, now, parse_time};
pub use usage::UsageReader;
pub use writer::{Msg, QUEUE};
