//! Why an SFTP session ended ([`End`], one named reason with the exit status the channel
//! reports), and the end shared by the session's parts ([`Ending`]): the reader, the request
//! thread and the writer each may end the session, the first reason given wins, and every wait
//! of every part ends with it.

use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The client closed the channel or the connection.
    ClosedByClient,
    /// The server is stopping and the session had no file open.
    ServerStopping,
    /// The shutdown grace period ran out (or the connection was cut off otherwise).
    CutOff,
    /// A packet longer than the limit (`handler::MAX_PACKET`): the stream cannot be
    /// resynchronised.
    OversizedPacket,
    /// The first packet was not INIT.
    NoInit,
    /// The request thread could not take the site owner's file-system identity.
    NoIdentity,
    /// The client hung up while the session waited for it to read its replies.
    HungUp,
    /// The client read none of its replies for the idle timeout while the queues were full.
    NotReading,
    /// The channel no longer takes data.
    ChannelGone,
}

impl End {
    /// For the log line.
    pub fn reason(self) -> &'static str {
        match self {
            End::ClosedByClient => "closed by the client",
            End::ServerStopping => "server stopping",
            End::CutOff => "cut off at the end of the shutdown grace period",
            End::OversizedPacket => "oversized packet",
            End::NoInit => "the session did not start with INIT",
            End::NoIdentity => "cannot act as the site's owner",
            End::HungUp => "the client hung up without reading its replies",
            End::NotReading => "the client read no replies for the idle timeout",
            End::ChannelGone => "the channel closed",
        }
    }

    /// The channel's exit status: 0 when the client ended the session, as OpenSSH's
    /// internal-sftp reports it; 1 when the server did.
    pub fn exit_status(self) -> u32 {
        match self {
            End::ClosedByClient => 0,
            _ => 1,
        }
    }
}

/// The end of one session, shared by its parts: the first reason given wins, and every wait
/// of every part ends when it is given.
#[derive(Default)]
pub struct Ending {
    token: CancellationToken,
    why: Mutex<Option<End>>,
}

impl Ending {
    /// Ends the session for `why`, unless it has ended already.
    pub fn end(&self, why: End) {
        self.why
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(why);
        self.token.cancel();
    }

    /// Why it ended (the client closing it, while it has not).
    pub fn why(&self) -> End {
        self.why
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(End::ClosedByClient)
    }

    /// Whether it has ended.
    pub fn is_ended(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once it has ended.
    pub async fn ended(&self) {
        self.token.cancelled().await
    }
}
