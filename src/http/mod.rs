//! HTTP plumbing shared by every handler: response builders, request ids, trace context,
//! reading bodies, bearer tokens in `Authorization`, and CORS.
//!
//! Nothing here knows about users or databases; handlers combine these pieces.

pub mod bearer;
pub mod body;
pub mod cors;
pub mod request_id;
pub mod response;
pub mod trace_context;
pub(crate) mod unique_bits;

/// The longest request target (path and query) the service takes: 414 above it. The longest
/// target it serves is a page request with a cursor, under 100 bytes; 8 KiB is the limit most
/// servers and proxies apply, so nothing legitimate that reached the service is refused.
pub const MAX_TARGET_BYTES: usize = 8 << 10;
