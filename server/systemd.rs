//! Living under a service manager: readiness and state notifications (`sd_notify`), the
//! watchdog, and listening sockets handed over by socket activation (`LISTEN_FDS`).
//!
//! The protocols are spoken by the `sd-notify` crate; without `NOTIFY_SOCKET` (not under
//! systemd, or `Type=simple`) every notification is a no-op. Handed-over sockets are taken by
//! name (`LISTEN_FDNAMES`, the `FileDescriptorName=` of `yadokari.socket`: `http`, `https`,
//! `sftp`, `admin`, `panel`); without names (`systemd-socket-activate` without `--fdname`), in the order
//! `http`, `sftp`, `https`, `admin`, `panel`. A socket that is not a listening TCP socket, an unknown name
//! or a name given twice is refused with the reason before anything is served.
//!
//! An upgrade's new server (`crate::upgrade`) is started with `NOTIFY_SOCKET` pointing at the
//! old server, which waits there for its `READY=1`, and with the service manager's own socket
//! in `YADOKARI_SERVICE_NOTIFY_SOCKET` (its watchdog period in
//! `YADOKARI_SERVICE_WATCHDOG_USEC`): [`take_upgrade_environment`] puts those back, so that
//! once the old server has made the new one the service's main process (`MAINPID=`), its
//! status, watchdog pings, reloads and stop reach the service manager.

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
    /// `admin`.
    pub admin: Option<std::net::TcpListener>,
    /// `panel`.
    pub panel: Option<std::net::TcpListener>,
}

/// Where an upgrade's new server says it is ready (the old server's socket), when this
/// process is one.
static UPGRADE_READY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// The environment variables that carry the service manager's socket and watchdog period past
/// an upgrade's handshake.
pub const SERVICE_NOTIFY_SOCKET: &str = "YADOKARI_SERVICE_NOTIFY_SOCKET";
/// See [`SERVICE_NOTIFY_SOCKET`].
pub const SERVICE_WATCHDOG_USEC: &str = "YADOKARI_SERVICE_WATCHDOG_USEC";

/// In an upgrade's new server: remembers the old server's socket for [`ready`] and points
/// `NOTIFY_SOCKET` (and the watchdog) back at the service manager. Call before any thread
/// starts (it changes the environment).
pub fn take_upgrade_environment() {
    let Some(service) = std::env::var_os(SERVICE_NOTIFY_SOCKET) else {
        return;
    };
    if let Some(old) = std::env::var_os("NOTIFY_SOCKET") {
        let _ = UPGRADE_READY.set(old.into());
    }
    let watchdog = std::env::var_os(SERVICE_WATCHDOG_USEC);
    // SAFETY: called from `main` before the runtime or any other thread exists, so nothing
    // reads the environment concurrently.
    unsafe {
        std::env::remove_var(SERVICE_NOTIFY_SOCKET);
        std::env::remove_var(SERVICE_WATCHDOG_USEC);
        if service.is_empty() {
            std::env::remove_var("NOTIFY_SOCKET");
        } else {
            std::env::set_var("NOTIFY_SOCKET", service);
        }
        if let Some(usec) = watchdog {
            std::env::set_var("WATCHDOG_USEC", usec);
            std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
        }
    }
}

/// What an upgrade's new server inherits to reach the service manager: this process's own
/// service socket and watchdog period, as environment pairs (empty values when there are none).
pub fn service_environment() -> [(&'static str, String); 2] {
    let watchdog = sd_notify::watchdog_enabled()
        .map(|d| d.as_micros().to_string())
        .unwrap_or_default();
    [
        (
            SERVICE_NOTIFY_SOCKET,
            std::env::var("NOTIFY_SOCKET").unwrap_or_default(),
        ),
        (SERVICE_WATCHDOG_USEC, watchdog),
    ]
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
            ["http", "sftp", "https", "admin", "panel"]
                .get(i)
                .copied()
                .unwrap_or("")
        } else {
            name.as_str()
        };
        let slot = match role {
            "http" => &mut out.http,
            "sftp" => &mut out.sftp,
            "https" => &mut out.https,
            "admin" => &mut out.admin,
            "panel" => &mut out.panel,
            _ => {
                return Err(format!(
                    "socket activation: descriptor {fd} is named `{name}`; this server takes `http`, `https`, `sftp`, `admin` and `panel`"
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

/// Tells the service manager the server is ready, with a status line. An upgrade's new server
/// tells the old one instead (which then names it the main process); only its status goes to
/// the service manager.
pub fn ready(status: &str) {
    match UPGRADE_READY.get() {
        Some(old) => {
            let said = std::os::unix::net::UnixDatagram::unbound()
                .and_then(|s| s.send_to(b"READY=1\n", old));
            if let Err(e) = said {
                tracing::error!(socket = %old.display(), error = %e, "cannot tell the server being upgraded that this one is ready");
            }
            send(&[NotifyState::Status(status)]);
        }
        None => send(&[NotifyState::Ready, NotifyState::Status(status)]),
    }
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
