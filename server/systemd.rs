//! Living under a service manager: readiness and state notifications (`sd_notify`), the
//! watchdog, and listening sockets handed over by socket activation (`LISTEN_FDS`).
//!
//! The protocols are spoken by the `sd-notify` crate; without `NOTIFY_SOCKET` (not under
//! systemd, or `Type=simple`) every notification is a no-op. Handed-over sockets are taken by
//! name (`LISTEN_FDNAMES`, the `FileDescriptorName=` of `yadokari.socket`: `http`, `https`,
//! `sftp`); without names (`systemd-socket-activate` without `--fdname`), in the order `http`,
//! `sftp`, `https`. A socket that is not a listening TCP socket, an unknown name or a name given
//! twice is refused with the reason before anything is served.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use sd_notify::NotifyState;

/// Listening sockets handed over by the service manager, by role.
#[derive(Default)]
pub struct Inherited {
    /// `http`.
    pub http: Option<std::net::TcpListener>,
    /// `sftp`.
    pub sftp: Option<std::net::TcpListener>,
    /// `https`.
    pub https: Option<std::net::TcpListener>,
}

/// The sockets handed over to this process (none when `LISTEN_PID` is not this process).
pub fn inherited() -> Result<Inherited, String> {
    let fds: Vec<(RawFd, String)> = sd_notify::listen_fds_with_names()
        .map_err(|e| format!("socket activation: {e} (LISTEN_FDS, LISTEN_FDNAMES)"))?
        .collect();
    let mut out = Inherited::default();
    let unnamed = fds.iter().all(|(_, name)| name == "unknown");
    for (i, (fd, name)) in fds.into_iter().enumerate() {
        let role = if unnamed {
            ["http", "sftp", "https"].get(i).copied().unwrap_or("")
        } else {
            name.as_str()
        };
        let slot = match role {
            "http" => &mut out.http,
            "sftp" => &mut out.sftp,
            "https" => &mut out.https,
            _ => {
                return Err(format!(
                    "socket activation: descriptor {fd} is named `{name}`; this server takes `http`, `https` and `sftp`"
                ));
            }
        };
        if slot.is_some() {
            return Err(format!("socket activation: two sockets are named `{role}`"));
        }
        *slot = Some(listener(fd, role)?);
    }
    Ok(out)
}

/// Takes descriptor `fd` as a listening TCP socket, or says what it is instead.
fn listener(fd: RawFd, role: &str) -> Result<std::net::TcpListener, String> {
    use nix::sys::socket::{
        AddressFamily, SockType, SockaddrLike, getsockname, getsockopt, sockopt,
    };
    // SAFETY: the service manager handed this descriptor to this process (LISTEN_PID is ours)
    // and nothing else in the process owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let bad = |what: &str| format!("socket activation: the `{role}` descriptor ({fd}) {what}");
    let kind = getsockopt(&owned, sockopt::SockType)
        .map_err(|e| bad(&format!("is not a socket ({e})")))?;
    let listening = getsockopt(&owned, sockopt::AcceptConn).unwrap_or(false);
    let family =
        getsockname::<nix::sys::socket::SockaddrStorage>(std::os::fd::AsRawFd::as_raw_fd(&owned))
            .ok()
            .and_then(|a| a.family());
    if kind != SockType::Stream || !listening {
        return Err(bad("is not a listening stream socket"));
    }
    if !matches!(family, Some(AddressFamily::Inet | AddressFamily::Inet6)) {
        return Err(bad("is not a TCP socket (IPv4 or IPv6)"));
    }
    let listener = std::net::TcpListener::from(owned);
    listener
        .set_nonblocking(true)
        .map_err(|e| bad(&format!("cannot be made non-blocking ({e})")))?;
    Ok(listener)
}

/// Tells the service manager the server is ready, with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells the service manager a reload starts (`RELOADING=1` with the monotonic time systemd
/// asks of `Type=notify-reload` services).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Tells the service manager that process `pid` (an upgrade's new server) is the service's
/// main process from now on.
pub fn main_pid(pid: i32) {
    let status = format!("upgraded: pid {pid} serves now");
    send(&[
        NotifyState::MainPid(pid as u32),
        NotifyState::Status(&status),
    ]);
}

/// Tells the service manager the server is stopping.
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: finishing what is in flight"),
    ]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// Pings the watchdog at half its period, for as long as the runtime runs (a hung runtime
/// stops pinging, and the service manager restarts the server); returns at once when there
/// is no watchdog.
pub async fn watchdog() {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (period / 2).max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        send(&[NotifyState::Watchdog]);
    }
}
