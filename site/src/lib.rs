//! The site model that yadokari's HTTP side and SFTP side share.
//!
//! Both halves of the product must agree, byte for byte, on two things: which paths belong to a
//! site (the [`jail`]), and what the server will do with a file given its type, mode and owner
//! (the [`policy`], the permission gate, whose refusals are the named [`Denial`]s). Keeping them
//! in this one small crate, with no async runtime and no protocol in it, is what makes "one
//! copy" true: the HTTP server resolves requests through it, `yadokari explain` prints its
//! verdicts, and the SFTP endpoint confines every file operation with the same jail.
//!
//! Being the one crate both the binary and `sftp-upload` depend on, it is also where the few
//! helpers both need live, instead of a copy on each side: [`read`] (a pread into a buffer's
//! spare capacity, for static bodies and SFTP READs), [`random`] (bytes from the kernel, for
//! host keys and first passwords), [`log_text`] (names and paths escaped for log lines) and
//! [`per_address`] (per-client-address caps on connections and logins), [`defender`] (failed
//! logins counted per address and the ban: SFTP password logins and the web side's Basic
//! authentication), and [`identity`] (a
//! thread taking a site owner's file-system identity: the SFTP session's request thread, and
//! the server's writer of customers' logs, which opens files in a directory the customer
//! controls).

pub mod defender;
pub mod denial;
pub mod identity;
pub mod jail;
pub mod log_text;
pub mod per_address;
pub mod policy;
pub mod random;
pub mod read;
pub mod scratch;

pub use denial::Denial;
pub use jail::{Jail, JailError};
pub use log_text::LogText;
pub use policy::{FileFacts, FileKind, Role, Subject, Verdict, decide};
