//! The SSH side of a connection (russh's [`Handler`]): authentication against the configured
//! users, and channels that may start the `sftp` subsystem or run one of the push-deploy
//! programs (`exec`, see [`crate::deploy`] and [`crate::exec`]). A shell or any other command
//! gets a sentence that says what this host accepts and exit status 1; pty, X11, agent and
//! port forwarding requests are refused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use russh::keys::HashAlg;
use russh::server::{Auth, ChannelOpenHandle, Handler, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tracing::Instrument;
use yadokari_site::LogText;

use crate::accounts;
use crate::files::SiteFiles;
use crate::guard::Guard;
use crate::handler::Sftp;
use crate::handles::Handles;
use crate::quota::Quota;
use crate::{Endpoint, User};

/// One connection.
pub struct Connection {
    endpoint: Arc<Endpoint>,
    peer: SocketAddr,
    user: Option<Arc<User>>,
    channels: HashMap<ChannelId, Channel<Msg>>,
    authenticated: Arc<AtomicBool>,
    guard: Guard,
}

impl Connection {
    /// A connection from `peer`; `authenticated` is set once a login succeeds (the accept
    /// loop ends connections that do not log in within the login grace time); `guard` is the
    /// connection's, handed to its SFTP sessions.
    pub fn new(
        endpoint: Arc<Endpoint>,
        peer: SocketAddr,
        authenticated: Arc<AtomicBool>,
        guard: Guard,
    ) -> Connection {
        Connection {
            endpoint,
            peer,
            user: None,
            channels: HashMap::new(),
            authenticated,
            guard,
        }
    }

    /// A `shell` (`command` `None`) or `exec` request: refused with the sentence, or a deploy
    /// program run as the user (see [`crate::exec`]).
    fn exec(
        &mut self,
        channel: ChannelId,
        command: Option<&[u8]>,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let (Some(user), Some(ch)) = (self.user.clone(), self.channels.remove(&channel)) else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        session.channel_success(channel)?;
        let span = tracing::debug_span!("exec", customer = %user.name);
        let shown = command.map_or_else(|| "a shell".to_string(), |c| LogText(c).to_string());
        let checked = match command {
            None => Err(crate::deploy::Refusal("a login shell".into())),
            Some(c) => crate::deploy::check(c, &user.site),
        };
        let starting = checked.map_err(|r| r.0).and_then(|deploy| {
            let deployer = self.endpoint.config().deployer.clone();
            let deployer = deployer
                .ok_or_else(|| "push deploys are not enabled on this server".to_string())?;
            Ok((deployer, deploy))
        });
        let peer = self.peer;
        let name = user.name.clone();
        let config = self.endpoint.config();
        let slot = self.endpoint.session_slot(&user.name);
        let guard = self.guard.clone();
        let quota = Arc::new(Quota::new(
            user.quota,
            self.endpoint.usage(&user.name),
            std::time::Duration::ZERO,
        ));
        self.endpoint.session_tasks.spawn(
            async move {
                let starting = match slot {
                    Some(_) => starting,
                    None => Err("too many sessions of this user at once; try again when one has ended".to_string()),
                };
                let mut before = None;
                let started = match starting {
                    Ok((deployer, deploy)) => {
                        match admitted(&deploy, &user, &quota, config.honour_client_mode).await {
                            Ok(room) => {
                                if deploy.writes() {
                                    before = site_snapshot(user.site.clone()).await;
                                }
                                deployer.start(&name, &deploy, room).await.map(|s| (s, deploy, room))
                            }
                            Err(why) => Err(why),
                        }
                    }
                    Err(why) => Err(why),
                };
                let (started, deploy, room) = match started {
                    Err(why) => {
                        tracing::warn!(%peer, user = %name, command = %shown, reason = %why, "command refused: this host runs only sftp, rsync, scp and git push");
                        crate::exec::refuse(ch, &why).await;
                        return;
                    }
                    Ok(started) => started,
                };
                tracing::info!(%peer, user = %name, command = %shown, program = deploy.program, "deploy started");
                // A writing program is watched: passing the quota stops it.
                let stopped = std::sync::OnceLock::new();
                let stop = async {
                    tokio::select! {
                        () = guard.hung_up() => {}
                        over = watch_quota(&user, &quota, config.honour_client_mode), if deploy.writes() => {
                            let _ = stopped.set(over);
                        }
                    }
                };
                let prefix = match deploy.program {
                    "git-receive-pack" => "remote: ",
                    _ => "yadokari: ",
                };
                let too_large = room.map_or_else(String::new, |room| {
                    format!("{prefix}a write past the room left in your quota ({room} bytes) failed (\"File too large\"); nothing past the quota was written: remove files first, or ask for a larger quota\n")
                });
                let ended = crate::exec::run(ch, started, stop, &too_large).await;
                match (ended.status, stopped.get()) {
                    (Some(code), _) => tracing::info!(user = %name, program = deploy.program, status = code, "deploy ended"),
                    (None, Some(over)) => tracing::warn!(user = %name, program = deploy.program, reason = %over, "deploy stopped: the site passed its quota"),
                    (None, None) => tracing::info!(user = %name, program = deploy.program, "deploy ended: the client left; the program was stopped"),
                }
                let mut said = Vec::new();
                if let Some(over) = stopped.get() {
                    said.push(format!("stopped: your site passed its quota while {} was writing ({over})", deploy.program));
                } else if ended.too_large && let Some(room) = room {
                    tracing::warn!(user = %name, program = deploy.program, room, "deploy: a file larger than the room left in the quota was refused");
                }
                if let Some(before) = before {
                    said.extend(log_changes(&user, deploy.program, before, config.advisor.clone()).await);
                }
                if deploy.writes() {
                    // What it wrote is counted afresh, for the next write's quota check.
                    let _ = admitted(&deploy, &user, &quota, config.honour_client_mode).await;
                }
                let text: String = said.iter().map(|l| format!("{prefix}{l}\n")).collect();
                let status = match (ended.status, stopped.get()) {
                    (Some(0), Some(_)) | (None, _) => 1,
                    (Some(code), _) => code,
                };
                ended.close(&text, status).await;
            }
            .instrument(span),
        );
        Ok(())
    }

    fn methods() -> MethodSet {
        MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..])
    }

    fn reject() -> Auth {
        Auth::Reject {
            proceed_with_methods: Some(Self::methods()),
            partial_success: false,
        }
    }

    fn find_user(&self, name: &str) -> Option<Arc<User>> {
        self.endpoint
            .config()
            .users
            .iter()
            .find(|u| u.name == name)
            .cloned()
    }

    fn key_ok(&self, user: &User, key: &russh::keys::PublicKey) -> bool {
        match &user.authorized_keys {
            Some(path) => accounts::key_allowed(&accounts::authorized_keys(path, &user.name), key),
            None => false,
        }
    }

    /// A rejection, with the reason and its fix in the log, for a user whose credentials are
    /// right but who may not log in. Not a failed login: it counts toward no ban.
    fn refused(&self, user: &User) -> Option<Result<Auth, russh::Error>> {
        let reason = user.refused.as_deref()?;
        tracing::warn!(peer = %self.peer, user = %user.name, reason, "sftp login refused");
        Some(Ok(Self::reject()))
    }

    fn failed(&self, user: &str, method: &str) -> Result<Auth, russh::Error> {
        let banned = self.endpoint.defender.fail(self.peer.ip());
        // SECURITY: the name comes from the client; Debug-format it so control characters
        // cannot forge log lines.
        tracing::warn!(peer = %self.peer, user = ?user, method, "sftp login failed");
        if banned {
            tracing::warn!(peer = %self.peer, "too many failed logins; address refused for a while");
            return Err(russh::Error::Disconnect);
        }
        Ok(Self::reject())
    }
}

impl Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Self::reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.endpoint.defender.is_banned(self.peer.ip()) {
            return Err(russh::Error::Disconnect);
        }
        match self.find_user(user) {
            Some(u) if self.key_ok(&u, offer.public_key) => Ok(Auth::Accept),
            _ => Ok(Self::reject()),
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        match self.find_user(user) {
            Some(u) if self.key_ok(&u, key.public_key) => {
                if let Some(refusal) = self.refused(&u) {
                    return refusal;
                }
                tracing::info!(peer = %self.peer, %user, key = %key.public_key.fingerprint(HashAlg::Sha256), "sftp login (key)");
                self.user = Some(u);
                self.authenticated.store(true, Ordering::SeqCst);
                Ok(Auth::Accept)
            }
            _ => self.failed(user, "publickey"),
        }
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if self.endpoint.defender.is_banned(self.peer.ip()) {
            return Err(russh::Error::Disconnect);
        }
        let found = self.find_user(user);
        let ok = accounts::password_of(found.as_deref(), password).await;
        if ok {
            if let Some(refusal) = found.as_deref().and_then(|u| self.refused(u)) {
                return refusal;
            }
            tracing::info!(peer = %self.peer, %user, "sftp login (password)");
            self.user = found;
            self.authenticated.store(true, Ordering::SeqCst);
            Ok(Auth::Accept)
        } else {
            self.failed(user, "password")
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Channels opened but not yet running SFTP: clients open one and start the subsystem at
        // once, so a pile of idle ones is refused (running sessions are capped per user).
        if self.channels.len() >= 2 {
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        }
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(user), true) = (self.user.clone(), name == "sftp") else {
            tracing::info!(peer = %self.peer, subsystem = name, "subsystem refused: only sftp is offered");
            session.channel_failure(channel)?;
            return Ok(());
        };
        let Some(ch) = self.channels.remove(&channel) else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        let Some(slot) = self.endpoint.session_slot(&user.name) else {
            tracing::warn!(user = %user.name, "too many sftp sessions for this user");
            session.channel_failure(channel)?;
            return Ok(());
        };
        let files = match SiteFiles::open(
            &user.site,
            &user.name,
            self.endpoint.config().honour_client_mode,
        ) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(user = %user.name, site = %LogText::path(&user.site), error = %e, "cannot open the user's site");
                session.channel_failure(channel)?;
                return Ok(());
            }
        };
        session.channel_success(channel)?;
        // The session's span names the customer: the server copies the events inside it
        // (session start and end, transfer lines) to the customer's own error log, if any. A
        // debug span, so that the global log's lines keep their shape at the default level.
        let span = tracing::debug_span!("sftp", customer = %user.name);
        span.in_scope(|| tracing::info!(peer = %self.peer, user = %user.name, site = %LogText::path(&user.site), "sftp session started"));
        let config = self.endpoint.config();
        let tally = self.endpoint.usage(&user.name);
        let quota = Quota::new(user.quota, tally, config.limits.quota_rescan);
        let handles = Handles::new(config.limits.max_handles, self.endpoint.handle_budget());
        let mut sftp = Sftp::new(files, &user.name, handles, quota);
        if let Some(advisor) = &config.advisor {
            sftp.advise_with(advisor.clone(), user.site.clone());
        }
        let stops = crate::session::Stops {
            shutdown: self.endpoint.shutdown.clone(),
            guard: self.guard.clone(),
            idle: config.limits.idle_timeout,
        };
        let name = user.name.clone();
        // Tracked, so that the endpoint's shutdown waits for the session to free what it holds.
        self.endpoint.session_tasks.spawn(
            async move {
                crate::session::run(ch, sftp, name, stops).await;
                drop(slot);
            }
            .instrument(span),
        );
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.exec(channel, None, session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.exec(channel, Some(data), session)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    /// Ignored, without a reply: OpenSSH sends `env` with want-reply false (SendEnv), and an
    /// unasked-for failure would be taken as the answer to its subsystem request.
    async fn env_request(
        &mut self,
        _channel: ChannelId,
        _name: &str,
        _value: &str,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single: bool,
        _proto: &str,
        _cookie: &str,
        _screen: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::info!(peer = %self.peer, channel = ?channel, "X11 forwarding refused");
        Ok(())
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn tcpip_forward(
        &mut self,
        _address: &str,
        _port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }
}

/// Whether the quota lets `deploy` start: one that writes needs room for a byte and a file in
/// the freshly counted site; the room left in bytes, when bytes are limited. The count reads
/// directories, so it runs on the blocking pool.
async fn admitted(
    deploy: &crate::deploy::Deploy,
    user: &Arc<User>,
    quota: &Arc<Quota>,
    honour_client_mode: bool,
) -> Result<Option<u64>, String> {
    if !deploy.writes() {
        return Ok(None);
    }
    let (user, quota) = (user.clone(), quota.clone());
    tokio::task::spawn_blocking(move || {
        let files = SiteFiles::open(&user.site, &user.name, honour_client_mode)
            .map_err(|e| format!("the site cannot be opened ({e})"))?;
        quota
            .admits_a_deploy(&files)
            .map_err(|e| format!("your site is over its quota ({e}); remove files first"))
    })
    .await
    .unwrap_or_else(|e| Err(format!("the quota check failed ({e})")))
}

/// Resolves when the site, counted again and again while a deploy writes, is over its quota
/// (the file size limit stops one file from passing it; this stops many). Each count waits ten
/// times as long as the last took, and a second at least, so a large site is not counted
/// without pause. Never resolves without a quota.
async fn watch_quota(
    user: &Arc<User>,
    quota: &Arc<Quota>,
    honour_client_mode: bool,
) -> crate::quota::Exceeded {
    if user.quota == crate::quota::QuotaLimits::default() {
        return std::future::pending().await;
    }
    let mut pause = std::time::Duration::from_secs(1);
    loop {
        tokio::time::sleep(pause).await;
        let (user, quota) = (user.clone(), quota.clone());
        let began = std::time::Instant::now();
        let over = tokio::task::spawn_blocking(move || {
            let files = SiteFiles::open(&user.site, &user.name, honour_client_mode).ok()?;
            quota.over(&files)
        })
        .await
        .ok()
        .flatten();
        if let Some(over) = over {
            return over;
        }
        pause = (began.elapsed() * 10).max(std::time::Duration::from_secs(1));
    }
}

/// The site's regular files now (see [`crate::scan`]); `None` when it cannot be read or is too
/// big to compare.
async fn site_snapshot(site: std::path::PathBuf) -> Option<crate::scan::Snapshot> {
    tokio::task::spawn_blocking(move || {
        use nix::fcntl::OFlag;
        let root = nix::fcntl::open(
            &site,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()?;
        crate::scan::snapshot(&root)
    })
    .await
    .ok()
    .flatten()
}

/// Transfer-log lines for what a deploy by `program` wrote and removed since `before`, each
/// written file with what the web side makes of it (as for an SFTP upload); returns what the
/// client is told: each written file the web refuses, with why and the fix, and a count.
async fn log_changes(
    user: &Arc<User>,
    program: &'static str,
    before: crate::scan::Snapshot,
    advisor: Option<crate::Advisor>,
) -> Vec<String> {
    let Some(after) = site_snapshot(user.site.clone()).await else {
        return Vec::new();
    };
    let user = user.clone();
    let span = tracing::Span::current();
    let owner = std::fs::metadata(&user.site).map(|m| {
        use std::os::unix::fs::MetadataExt;
        (m.uid(), m.gid())
    });
    tokio::task::spawn_blocking(move || {
        let _in = span.enter();
        let mut said = Vec::new();
        // What the web side makes of each file is read with the customer's rights, as an
        // SFTP session's verdicts are.
        let Ok(owner) = owner else { return said };
        let Ok(_identity) = yadokari_site::identity::OwnerIdentity::assume(owner) else {
            return said;
        };
        let changes = crate::scan::changes(&before, &after);
        let (mut on_web, mut refused) = (0, 0);
        for (path, bytes) in changes.written {
            let rel = std::path::Path::new(std::ffi::OsStr::from_bytes(&path));
            let advice = advisor.as_ref().and_then(|advise| advise(&user.site, rel));
            let web = advice.as_ref().map_or("", |a| a.line.as_str());
            tracing::info!(user = %user.name, op = "upload", via = program, path = %format_args!("/{}", LogText(&path)), bytes, web = %LogText::str(web), "transfer");
            if let Some(advice) = advice {
                on_web += 1;
                if !advice.works {
                    refused += 1;
                    said.push(format!("{}: {}", advice.url, advice.line));
                }
            }
        }
        for path in changes.gone {
            tracing::info!(user = %user.name, op = "remove", via = program, path = %format_args!("/{}", LogText(&path)), "transfer");
        }
        // The first ones are enough to act on; the transfer log has them all.
        const SHOWN: usize = 20;
        if said.len() > SHOWN {
            let more = said.len() - SHOWN;
            said.truncate(SHOWN);
            said.push(format!("... and {more} more (the transfer log in logs/ has them all)"));
        }
        if on_web > 0 {
            said.push(match refused {
                0 => format!("the web serves all {on_web} file(s) written"),
                n => format!("of {on_web} file(s) written for the web, {n} will not work (above, each with its fix)"),
            });
        }
        said
    })
    .await
    .unwrap_or_default()
}
