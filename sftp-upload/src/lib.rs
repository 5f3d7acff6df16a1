//! yadokari's embedded SFTP endpoint: hosting users upload, list and chmod their site over SSH,
//! each jailed to it, as on a rental server's FTP.
//!
//! One public entry point, [`run`], takes a bound listener and the [`Endpoint`] (the
//! configuration and a shutdown token). SSH is russh (the host key and the users' keys are `ssh-key` types re-exported by
//! `russh::keys`, so the two never disagree on versions); the SFTP protocol is this crate's own.
//!
//! # Why an own SFTP v3 codec rather than russh-sftp
//!
//! SFTP v3 is small and well specified (draft-ietf-secsh-filexfer-02 plus OpenSSH's PROTOCOL
//! file), and russh-sftp 3.0.1 falls short exactly where this product needs it: its sequential
//! handler over russh's bounded channel queue deadlocks downloads (OpenSSH `get` stalls at
//! ~30 MB); an oversized packet desynchronises the stream; names are `String`, so Shift_JIS
//! names from old CGI kits become U+FFFD; attributes built from `Metadata` corrupt file types;
//! long names are not `ls -l`; symlink arguments are swapped; no extensions; parse errors are
//! answered with request id 0. Here: names are bytes end to end (`wire`, `path`), packet
//! lengths are checked before allocating, every reply carries its request's id, and the session
//! (`session`) never stops reading the channel while replies wait for window space.
//!
//! # Choices worth knowing
//!
//! - russh is built with its default crypto, `aws-lc-rs`, not `ring`: ring's Poly1305 on
//!   x86_64 is its portable C code, which was 29% of the server's CPU in a 256 MiB download
//!   with chacha20-poly1305 (the cipher the stock client picks); with aws-lc the server's CPU
//!   for that download fell from 530 to 390 ms. aws-lc-sys builds with the `cc` crate and gcc
//!   (no CMake), about a minute on 2 cores. `rsa` is on so that users' RSA keys work.
//! - Each SFTP session's requests run in order on one blocking-pool thread (READs fan out to
//!   others), so that, when the server is root, the thread can take the site owner's
//!   file-system identity (`identity`) for the whole session.
//! - `bench/sftp.sh` measures this endpoint against OpenSSH's sshd + internal-sftp; on the
//!   development machine (2 cores, loopback, 256 MiB): upload 2.6x and download 1.7x sshd's
//!   throughput with chacha20-poly1305.
//!
//! # Known limits
//!
//! - A client that pipelines more requests than the queues hold while never reading its
//!   replies stalls its own session (memory stays bounded by the queues). The session ends when
//!   the client resets or closes the connection, after `idle_timeout` without room, or at the
//!   end of the shutdown grace period (`session`). A close (FIN) queued behind data the server
//!   has not read yet cannot arrive before that data; such a client's kernel gives up on it and
//!   resets the connection, or the idle bound ends the session.
//! - Reopening checked descriptors goes through `/proc/self/fd`, so `/proc` must be mounted.
//! - paramiko's retry of a failed password re-sends the `ssh-userauth` service request, which
//!   russh does not answer; OpenSSH clients retry within one request flow and work.
//!
//! # Public surface
//!
//! The contract with the binary, and nothing else: [`run`] and [`Endpoint`]; the configuration
//! ([`Config`], [`User`], [`Limits`], [`QuotaLimits`], [`Advisor`], and the [`keys`] types in
//! it); [`accounts`], what the binary needs to manage accounts (host key, password hashes,
//! `authorized_keys`); and [`count_usage`], a site's [`Usage`] counted as the quota counts it. Every other module is private to the crate, so it can change shape
//! without the binary noticing.
//!
//! # Map of the private modules
//!
//! - `ssh`: authentication and channels (only the `sftp` subsystem);
//! - `yadokari_site::defender` (shared with the web side's Basic authentication): failed
//!   logins per address, and the ban;
//! - `session`: reader / request thread / writer of one SFTP session; `ending`: why and how it ends;
//! - `handler`: one request → one reply, and the transfer log (split by request family);
//! - `files`: the user's site through the shared jail, with the rental-server mode rules;
//! - `upload`: atomic uploads (temporary file renamed into place on close);
//! - each session runs in a span with a `customer` field (the user's name): the server
//!   copies the events inside it (transfer lines) to that customer's own error log;
//! - `yadokari_site::identity` (shared with the server's per-customer logs): as root, a
//!   session's requests run with the site owner's fsuid/fsgid;
//! - `guard`: the per-connection kill switch (login grace time, end of shutdown grace);
//! - `walk`: a walk over a site that never follows a link (quota counting, the stale-upload sweep);
//! - `usage`: what a user's site holds, counted, kept current and recounted; `quota`: the
//!   limits checked against it;
//! - `handles`, `longname`, `reply`, `wire`, `path`, `error`.

pub mod accounts;
pub mod deploy;
mod ending;
mod error;
pub mod exec;
mod files;
mod guard;
mod handler;
mod handles;
mod home;
mod longname;
mod path;
pub mod proxy_protocol;
mod quota;
mod reply;
mod scan;
mod session;
mod ssh;
mod upload;
mod usage;
mod walk;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use russh::keys::PrivateKey;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use yadokari_site::defender::Defender;
use yadokari_site::per_address::{AddressSlot, PerAddress};

pub use home::{Entry, Home};
pub use longname::mode_string;
pub use quota::QuotaLimits;
pub use usage::{DIR_BYTES, Usage, count_usage};

/// The key types of `ssh-key`, as russh re-exports them (one version in the whole build).
pub mod keys {
    pub use russh::keys::{HashAlg, PrivateKey, PublicKey};
}

/// A hosting user.
#[derive(Clone)]
pub struct User {
    /// Login name.
    pub name: String,
    /// The site directory the user is jailed to.
    pub site: PathBuf,
    /// OpenSSH `authorized_keys` file (re-read at every login, so edits apply at once).
    pub authorized_keys: Option<PathBuf>,
    /// PHC-format argon2id hash.
    pub password_hash: Option<String>,
    /// Quota.
    pub quota: QuotaLimits,
    /// Why this user may not log in although their credentials are right (their site would
    /// give them rights they must not have), with the fix; `None` for a user who may.
    pub refused: Option<String>,
}

impl std::fmt::Debug for User {
    /// SECURITY: the password hash stays out of debug output (and so out of any log line that
    /// prints a configuration).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("site", &self.site)
            .field("authorized_keys", &self.authorized_keys)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<set>"),
            )
            .field("quota", &self.quota)
            .field("refused", &self.refused)
            .finish()
    }
}

/// Every bound and cap of the SFTP side.
#[derive(Clone, Debug)]
pub struct Limits {
    /// An SSH connection with no traffic this long is closed.
    pub idle_timeout: Duration,
    /// A failed authentication is answered no sooner than this.
    pub auth_delay: Duration,
    /// Failed logins from one address (within `failure_window`) before it is banned.
    pub max_failures: u32,
    /// The window in which failures are counted.
    pub failure_window: Duration,
    /// How long a banned address is refused.
    pub ban: Duration,
    /// Open handles per SFTP session.
    pub max_handles: usize,
    /// Open handles of all sessions together: each holds a descriptor of the process, which
    /// HTTP connections and scripts need too (the binary sets it from the descriptor limit).
    pub max_open_handles: usize,
    /// SFTP sessions per user at once.
    pub max_sessions_per_user: usize,
    /// SSH connections at once.
    pub max_connections: usize,
    /// Connections from one address that have not logged in yet (sshd's MaxStartups, per
    /// address): idle connections from one place cannot take every slot.
    pub max_unauthenticated_per_address: usize,
    /// How long a connection may take to log in (sshd's LoginGraceTime).
    pub login_grace: Duration,
    /// How long running transfers may go on after shutdown is asked.
    pub shutdown_grace: Duration,
    /// A user's usage is recounted from their site (to see what scripts and others wrote
    /// there) when a write needs it and the last count began at least this long ago.
    pub quota_rescan: Duration,
    /// Every connection starts with a PROXY protocol header naming the client, sent by a peer
    /// of these (behind a load balancer; [`proxy_protocol`]); `None`: off.
    pub proxy_protocol: Option<proxy_protocol::Trusted>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            idle_timeout: Duration::from_secs(600),
            auth_delay: Duration::from_millis(500),
            max_failures: 10,
            failure_window: Duration::from_secs(600),
            ban: Duration::from_secs(900),
            max_handles: 256,
            max_open_handles: 16_384,
            max_sessions_per_user: 16,
            max_connections: 256,
            max_unauthenticated_per_address: 10,
            login_grace: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            quota_rescan: Duration::from_secs(60),
            proxy_protocol: None,
        }
    }
}

/// What the web side will do with a file of a site: given the site's root and the file's path
/// in it, an [`Advice`], or `None` when the file is not on the web. The binary answers it with
/// the same permission gate the HTTP side uses, so an upload or a chmod is logged with its
/// consequence.
pub type Advisor = Arc<dyn Fn(&std::path::Path, &std::path::Path) -> Option<Advice> + Send + Sync>;

/// The web side's verdict on one file.
#[derive(Clone, Debug)]
pub struct Advice {
    /// The verdict in a sentence, for the transfer log ("runs as a CGI script", or the refusal
    /// with its reason and fix).
    pub line: String,
    /// The file is served or run.
    pub works: bool,
    /// Its path on the web site (`cgi-bin/hello.cgi`).
    pub url: String,
}

/// The endpoint's configuration.
#[derive(Clone)]
pub struct Config {
    /// The SSH host key.
    pub host_key: PrivateKey,
    /// Hosting users.
    pub users: Vec<Arc<User>>,
    /// Honour the client's mode for new files and directories (masked by umask 022) instead of
    /// the rental-server defaults 0644 and 0755.
    pub honour_client_mode: bool,
    /// Limits.
    pub limits: Limits,
    /// What the web side makes of an uploaded or chmodded file, for the transfer log.
    pub advisor: Option<Advisor>,
    /// Starts the push-deploy programs an `exec` request may run (`None`: every exec is
    /// refused).
    pub deployer: Option<Arc<dyn exec::Deployer>>,
}

/// Sites counted at once for the quota. Counting is directory reads; two keep one large site
/// from holding up the others without letting recounts take the machine's disk.
const COUNTING_THREADS: usize = 2;

/// Shared state of the running endpoint.
pub struct Endpoint {
    config: RwLock<Arc<Config>>,
    defender: Defender,
    /// Addresses with a password login being checked outside SSH (the panel's).
    logins_in_flight: Mutex<std::collections::HashSet<std::net::IpAddr>>,
    /// Password checks outside SSH at once.
    password_checks: tokio::sync::Semaphore,
    sessions: Mutex<HashMap<String, Arc<AtomicUsize>>>,
    usage: Mutex<HashMap<String, Arc<usage::Tally>>>,
    /// Where the users' sites are counted.
    counter: usage::Counter,
    shutdown: CancellationToken,
    /// The running SFTP sessions, which shutdown waits for.
    session_tasks: TaskTracker,
    /// Handles open in all sessions (see [`Limits::max_open_handles`]).
    open_handles: Arc<AtomicUsize>,
}

/// Why a [`Endpoint::password_login`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    /// The name or the password is wrong (counted toward a ban).
    Wrong,
    /// The address is banned for its failed logins, here or over SSH.
    Banned,
    /// Another login from the address is being checked (or too many from all at once).
    Busy,
    /// The credentials are right but the user may not log in: why, with the fix.
    Refused(String),
}

/// An address's login being checked; the address is free again when dropped.
struct LoginTurn<'a> {
    set: &'a Mutex<std::collections::HashSet<std::net::IpAddr>>,
    peer: std::net::IpAddr,
}

impl<'a> LoginTurn<'a> {
    fn take(
        set: &'a Mutex<std::collections::HashSet<std::net::IpAddr>>,
        peer: std::net::IpAddr,
    ) -> Option<LoginTurn<'a>> {
        lock(set).insert(peer).then_some(LoginTurn { set, peer })
    }
}

impl Drop for LoginTurn<'_> {
    fn drop(&mut self) {
        lock(self.set).remove(&self.peer);
    }
}

/// Password checks outside SSH running at once, at most.
const PASSWORD_CHECKS: usize = 4;

/// A held SFTP session slot of a user; released on drop.
struct SessionSlot(Arc<AtomicUsize>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Endpoint {
    /// The endpoint for `config`.
    pub fn new(config: Config, shutdown: CancellationToken) -> Arc<Endpoint> {
        let l = &config.limits;
        let defender = Defender::new(l.max_failures, l.failure_window, l.ban);
        Arc::new(Endpoint {
            config: RwLock::new(Arc::new(config)),
            defender,
            logins_in_flight: Mutex::default(),
            password_checks: tokio::sync::Semaphore::new(PASSWORD_CHECKS),
            sessions: Mutex::new(HashMap::new()),
            usage: Mutex::new(HashMap::new()),
            counter: usage::Counter::start(COUNTING_THREADS),
            shutdown,
            session_tasks: TaskTracker::new(),
            open_handles: Arc::default(),
        })
    }

    /// The budget a new session's handles are taken from.
    fn handle_budget(&self) -> handles::Budget {
        let max = self.config().limits.max_open_handles;
        handles::Budget::new(self.open_handles.clone(), max)
    }

    /// The current configuration.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the configuration (users, keys, limits) for new logins; sessions already open
    /// keep what they started with. The host key is kept: it changes only with a restart.
    pub fn replace_config(&self, mut config: Config) {
        let mut slot = self.config.write().unwrap_or_else(|e| e.into_inner());
        config.host_key = slot.host_key.clone();
        *slot = Arc::new(config);
    }

    /// A password login outside SSH (the control panel's), judged as an SSH password login
    /// is: the same users and hashes, and the same ban, which failures on either side feed.
    pub async fn password_login(
        &self,
        peer: std::net::IpAddr,
        name: &str,
        password: &str,
    ) -> Result<Arc<User>, LoginFailure> {
        if self.defender.is_banned(peer) {
            return Err(LoginFailure::Banned);
        }
        // One check at a time per address, and a few at once in all: otherwise parallel
        // attempts would each get a guess before the first failure is counted, and each costs
        // a password hash's memory.
        let Some(_turn) = LoginTurn::take(&self.logins_in_flight, peer) else {
            return Err(LoginFailure::Busy);
        };
        let Ok(_hashing) = self.password_checks.acquire().await else {
            return Err(LoginFailure::Busy);
        };
        let found = self.config().users.iter().find(|u| u.name == name).cloned();
        let ok = accounts::password_of(found.as_deref(), password).await;
        match found {
            Some(user) if ok => match &user.refused {
                Some(why) => Err(LoginFailure::Refused(why.clone())),
                None => Ok(user),
            },
            _ => {
                let banned = self.defender.fail(peer);
                // Answered no sooner than a failed SSH login is (`auth_delay`).
                tokio::time::sleep(self.config().limits.auth_delay).await;
                Err(match banned {
                    true => LoginFailure::Banned,
                    false => LoginFailure::Wrong,
                })
            }
        }
    }

    /// SFTP sessions running now, all users together.
    pub fn sessions_running(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|c| c.load(Ordering::SeqCst))
            .sum()
    }

    /// Each user's counted usage (bytes, files), for those counted since the start (a user's
    /// site is counted at their first write, and recounted as `quota_rescan_secs` says).
    pub fn usage_counted(&self) -> Vec<(String, Usage)> {
        let mut out: Vec<_> = lock(&self.usage)
            .iter()
            .filter_map(|(user, tally)| tally.usage().map(|u| (user.clone(), u)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn session_slot(&self, user: &str) -> Option<SessionSlot> {
        let max = self.config().limits.max_sessions_per_user;
        let counter = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(user.to_string())
            .or_default()
            .clone();
        if counter.fetch_add(1, Ordering::SeqCst) >= max {
            counter.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(SessionSlot(counter))
    }

    fn usage(&self, user: &str) -> Arc<usage::Tally> {
        lock(&self.usage)
            .entry(user.to_string())
            .or_insert_with(|| Arc::new(usage::Tally::new(self.counter.clone())))
            .clone()
    }

    fn russh_config(&self) -> Arc<russh::server::Config> {
        let c = self.config();
        Arc::new(russh::server::Config {
            server_id: russh::SshId::Standard(
                format!("SSH-2.0-yadokari_{}", env!("CARGO_PKG_VERSION")).into(),
            ),
            methods: russh::MethodSet::from(
                &[russh::MethodKind::PublicKey, russh::MethodKind::Password][..],
            ),
            auth_rejection_time: c.limits.auth_delay,
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys: vec![c.host_key.clone()],
            inactivity_timeout: Some(c.limits.idle_timeout),
            nodelay: true,
            max_auth_attempts: 20,
            window_size: 16 * 1024 * 1024,
            maximum_packet_size: 65535,
            channel_buffer_size: 256,
            event_buffer_size: 64,
            ..Default::default()
        })
    }
}

/// Removes temporary upload files that a crash left in the users' sites (blocking).
fn sweep_stale_uploads(config: &Config) {
    let mut seen = std::collections::HashSet::new();
    for user in &config.users {
        if !seen.insert(user.site.clone()) {
            continue;
        }
        let Ok(files) = files::SiteFiles::open(&user.site, &user.name, false) else {
            continue;
        };
        let n = upload::sweep(files.jail());
        if n > 0 {
            tracing::info!(site = %yadokari_site::LogText::path(&user.site), removed = n, "removed unfinished uploads left by an earlier run");
        }
    }
}

/// Serves SFTP on `listener` until `shutdown` is cancelled; then stops accepting, lets running
/// sessions go on for the grace period, and disconnects those still open.
pub async fn run(listener: TcpListener, endpoint: Arc<Endpoint>) {
    {
        let config = endpoint.config();
        let _ = tokio::task::spawn_blocking(move || sweep_stale_uploads(&config)).await;
    }
    let max = endpoint.config().limits.max_connections;
    let mut connections = Connections::new(max);
    let shutdown = endpoint.shutdown.clone();
    // Behind a load balancer the client's address comes in a PROXY header, read by a task of
    // its own (a slow sender holds no one else up; at most `max` wait at once).
    let (headed, mut with_header) = tokio::sync::mpsc::channel(64);
    let reading = Arc::new(tokio::sync::Semaphore::new(max));
    loop {
        let (mut socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some((socket, peer)) = with_header.recv() => {
                connections.admit(socket, peer, &endpoint);
                continue;
            }
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "sftp accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(trusted) = endpoint.config().limits.proxy_protocol.clone() else {
            connections.admit(socket, peer, &endpoint);
            continue;
        };
        if !trusted.admits(peer.ip()) {
            tracing::warn!(%peer, "connection refused: not a peer of server.proxy_protocol_from, which alone may connect");
            continue;
        }
        let Ok(permit) = reading.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: too many connections still sending their PROXY header");
            continue;
        };
        let (headed, shutdown) = (headed.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                read = proxy_protocol::read_header(&mut socket) => match read {
                    Ok(client) => {
                        let _ = headed.send((socket, client.unwrap_or(peer))).await;
                    }
                    Err(why) => tracing::warn!(%peer, "connection refused: {why}"),
                },
                () = shutdown.cancelled() => {}
            }
            drop(permit);
        });
    }
    // Connections whose header came as the server began to stop are not served.
    with_header.close();
    while with_header.try_recv().is_ok() {}
    connections.wind_down(&endpoint).await;
}

/// The connections being served: their tasks, their count against the cap, and their guards
/// (to cut them off at the end of the shutdown grace period).
struct Connections {
    tasks: TaskTracker,
    slots: Arc<tokio::sync::Semaphore>,
    guards: Arc<Mutex<HashMap<u64, guard::Guard>>>,
    /// Connections per address that have not logged in yet.
    unauthenticated: Arc<PerAddress>,
    next_id: u64,
}

impl Connections {
    fn new(max: usize) -> Connections {
        Connections {
            tasks: TaskTracker::new(),
            slots: Arc::new(tokio::sync::Semaphore::new(max)),
            guards: Arc::default(),
            unauthenticated: Arc::default(),
            next_id: 0,
        }
    }

    /// Serves a new connection, unless its address is banned or the cap is reached.
    fn admit(&mut self, socket: tokio::net::TcpStream, peer: SocketAddr, endpoint: &Arc<Endpoint>) {
        if endpoint.defender.is_banned(peer.ip()) {
            tracing::info!(%peer, "connection refused: too many failed logins from this address");
            return;
        }
        let cap = endpoint.config().limits.max_unauthenticated_per_address;
        let Some(startup) = self.unauthenticated.admit(peer.ip(), cap) else {
            tracing::warn!(%peer, cap, "connection refused: too many connections from this address that have not logged in (sftp.max_unauthenticated_per_address)");
            return;
        };
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: too many SSH connections");
            return;
        };
        let guard = match guard::Guard::new(&socket) {
            Ok(guard) => guard,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "connection refused: cannot watch its socket");
                return;
            }
        };
        self.next_id += 1;
        let id = self.next_id;
        lock(&self.guards).insert(id, guard.clone());
        let guards = self.guards.clone();
        let endpoint = endpoint.clone();
        self.tasks.spawn(async move {
            serve_connection(socket, peer, endpoint, guard, startup).await;
            lock(&guards).remove(&id);
            drop(permit);
        });
    }

    /// Lets connections and sessions finish within the shutdown grace period, then cuts off
    /// those still open and waits (bounded) for them to free what they hold.
    async fn wind_down(self, endpoint: &Endpoint) {
        self.tasks.close();
        endpoint.session_tasks.close();
        let all_done = || async {
            self.tasks.wait().await;
            endpoint.session_tasks.wait().await;
        };
        let grace = endpoint.config().limits.shutdown_grace;
        if tokio::time::timeout(grace, all_done()).await.is_err() {
            tracing::info!("shutdown grace period over; closing the SFTP connections still open");
            for guard in lock(&self.guards).values() {
                guard.cut();
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), all_done()).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One SSH connection, from the handshake to its end.
async fn serve_connection(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    endpoint: Arc<Endpoint>,
    guard: guard::Guard,
    startup: AddressSlot,
) {
    let _ = socket.set_nodelay(true);
    let config = endpoint.russh_config();
    let authenticated = Arc::new(AtomicBool::new(false));
    let grace = endpoint.config().limits.login_grace;
    let handler = ssh::Connection::new(endpoint, peer, authenticated.clone(), guard.clone());
    let watchdog = tokio::spawn(login_watchdog(
        guard.clone(),
        authenticated,
        grace,
        peer,
        startup,
    ));
    match russh::server::run_stream(config, guard.stream(socket), handler).await {
        Ok(session) => {
            if let Err(e) = session.await {
                tracing::debug!(%peer, error = %e, "ssh connection ended with an error");
            }
        }
        Err(e) => tracing::debug!(%peer, error = %e, "ssh handshake failed"),
    }
    watchdog.abort();
}

/// SECURITY: a connection that never logs in would hold a connection slot until the idle
/// timeout; like sshd's LoginGraceTime, it gets `grace` in all.
///
/// Until the login, the connection holds its `startup` place among its address's connections
/// that have not logged in; it gives it back at the login (looked at every 50 ms), or when the
/// connection ends (the watchdog is aborted with it).
async fn login_watchdog(
    guard: guard::Guard,
    authenticated: Arc<AtomicBool>,
    grace: Duration,
    peer: SocketAddr,
    startup: AddressSlot,
) {
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if authenticated.load(Ordering::SeqCst) {
            drop(startup);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !authenticated.load(Ordering::SeqCst) {
        tracing::info!(%peer, "not logged in within the login grace time; closed");
        guard.cut();
    }
}
