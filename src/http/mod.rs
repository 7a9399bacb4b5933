//! HTTP plumbing shared by every handler: response builders, request ids, and reading bodies.
//!
//! Nothing here knows about users or databases; handlers combine these pieces.

pub mod body;
pub mod request_id;
pub mod response;
