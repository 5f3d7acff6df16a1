//! Compression on the fly: a response body turned into a gzip or brotli body as it streams.
//!
//! The body is read as a byte stream, fed to async-compression's encoder (the codec tower-http
//! uses), and the encoder's output is cut into frames again. Nothing is held beyond the
//! encoder's window and one output buffer, so a large file or a long script output never sits
//! in memory. When the source has nothing ready (a script thinking between two lines), the
//! encoder flushes what it has, so streamed output still reaches the client as it comes.

use async_compression::Level;
use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder};
use futures_util::TryStreamExt;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::io::AsyncRead;
use tokio_util::io::{ReaderStream, StreamReader};

use super::Coding;
use crate::body::Body;

/// gzip level for on-the-fly compression: zlib's default, nginx's usual setting.
const GZIP_LEVEL: i32 = 6;

/// Brotli quality for on-the-fly compression. Quality 11 (brotli's default, right for files
/// compressed once ahead of time) costs tens of times more CPU; 4 is smaller than gzip -6 at
/// about its speed, which is what servers that compress per request use.
const BROTLI_QUALITY: i32 = 4;

/// Size of the frames the compressed body yields.
const OUT_CHUNK: usize = 32 * 1024;

/// `body`, compressed with `coding`. Its length is unknown until the end, so HTTP/1.1 sends it
/// chunked.
pub fn compress(coding: Coding, body: Body) -> Body {
    let reader = StreamReader::new(body.into_data_stream());
    match coding {
        Coding::Gzip => framed(GzipEncoder::with_quality(
            reader,
            Level::Precise(GZIP_LEVEL),
        )),
        Coding::Brotli => framed(BrotliEncoder::with_quality(
            reader,
            Level::Precise(BROTLI_QUALITY),
        )),
    }
}

/// The encoder's output as a body of data frames.
fn framed(encoder: impl AsyncRead + Send + 'static) -> Body {
    let frames = ReaderStream::with_capacity(encoder, OUT_CHUNK).map_ok(Frame::data);
    StreamBody::new(frames).boxed_unsync()
}
