//! The response body type every handler returns, and small constructors for it.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

/// A response body: a boxed stream of byte chunks whose errors are I/O errors.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A request body as handlers see it: hyper's incoming body, or an empty one for an internal
/// redirect.
pub type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

/// The error type of a [`RequestBody`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An empty request body.
pub fn empty_request() -> RequestBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body held in memory.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// No body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}
