//! yadokari: args → config → logging → bind listeners → the [`app::App`] → run until shutdown
//! → exit code.

mod access_log;
mod acme;
mod app;
mod banner;
mod body;
mod cgi;
mod compress;
mod config;
mod conn;
mod customer_log;
mod deploy;
mod descriptors;
mod error;
mod error_log;
mod error_page;
mod explain;
mod forecast;
mod framing;
mod host;
mod htaccess;
mod listener;
mod listing;
mod metrics;
mod panel;
mod pid_file;
mod reaper;
mod resolve;
mod sandbox;
mod sendfile;
mod served;
mod service;
mod sftp;
mod sites;
mod socket;
mod static_files;
mod systemd;
mod tls;
mod upgrade;
mod url;
mod users;
mod version;
mod web_root;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::access_log::AccessLog;
use crate::app::{App, ConfigSource};
use crate::banner::banner;
use crate::config::{Config, Overrides};

/// A rental server in one binary: static files, CGI scripts chosen by their permission bits,
/// and jailed SFTP uploads.
#[derive(Parser)]
#[command(name = "yadokari", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP and SFTP servers (the default).
    Serve(ServeArgs),
    /// Say what the server does with a file of the site: serve, run or refuse, why, and the fix.
    Explain {
        /// The configuration file.
        #[arg(long, value_name = "FILE", env = "YADOKARI_CONFIG")]
        config: Option<PathBuf>,
        /// The document root (overrides the configuration).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// A file or directory inside the document root, or a URL path (`/cgi-bin/x.cgi`).
        path: PathBuf,
    },
    /// Upgrade the running server in place to the binary now on disk (SIGUSR2 to the pid in
    /// `[server] pid_file`), and wait until the new one serves.
    Upgrade {
        /// The configuration file.
        #[arg(long, value_name = "FILE", env = "YADOKARI_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Write the manual page and shell completions, generated from this command line, into
    /// DIR (`man/yadokari.1`, `completions/yadokari.bash`, `_yadokari`, `yadokari.fish`); the
    /// package build uses it.
    #[command(hide = true)]
    GenerateDocs {
        /// The directory to write into (made when missing).
        dir: PathBuf,
    },
    /// Ask the running server whether it is ready (the admin listener's `/healthz`); exit
    /// status 0 when it is, 1 when it is not.
    Health {
        /// The configuration file.
        #[arg(long, value_name = "FILE", env = "YADOKARI_CONFIG")]
        config: Option<PathBuf>,
        /// The admin listener's address (overrides the configuration).
        #[arg(long, value_name = "ADDR", env = "YADOKARI_ADMIN")]
        admin: Option<String>,
    },
    /// Manage the hosting users (SFTP logins) kept in the configuration file.
    User {
        /// The configuration file.
        #[arg(long, value_name = "FILE", global = true, env = "YADOKARI_CONFIG")]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: users::UserCommand,
    },
}

#[derive(Args, Clone, Default)]
struct ServeArgs {
    /// The configuration file (default: conf/yadokari.toml when it exists).
    #[arg(long, value_name = "FILE", global = true, env = "YADOKARI_CONFIG")]
    config: Option<PathBuf>,
    /// HTTP listen address, e.g. 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", env = "YADOKARI_HTTP")]
    http: Option<String>,
    /// SFTP listen address, e.g. 127.0.0.1:2222.
    #[arg(long, value_name = "ADDR", env = "YADOKARI_SFTP")]
    sftp: Option<String>,
    /// HTTPS listen address, e.g. 127.0.0.1:8443 (needs a certificate in `[tls]`).
    #[arg(long, value_name = "ADDR", env = "YADOKARI_HTTPS")]
    https: Option<String>,
    /// The document root to serve.
    #[arg(long, value_name = "DIR", env = "YADOKARI_ROOT")]
    root: Option<PathBuf>,
    /// Admin listen address for /metrics and /healthz, e.g. 127.0.0.1:9180 (off by default).
    #[arg(long, value_name = "ADDR", env = "YADOKARI_ADMIN")]
    admin: Option<String>,
    /// The customers' control panel's listen address, e.g. 127.0.0.1:8088 (off by default).
    #[arg(long, value_name = "ADDR", env = "YADOKARI_PANEL")]
    panel: Option<String>,
}

impl ServeArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            http: self.http.clone(),
            sftp: self.sftp.clone(),
            https: self.https.clone(),
            root: self.root.clone(),
            admin: self.admin.clone(),
            panel: self.panel.clone(),
        }
    }
}

fn main() -> ExitCode {
    close_inherited_descriptors();
    systemd::take_upgrade_environment();
    // The version shown by `--version` carries the image's deploy version (`crate::version`).
    let cli = Cli::from_arg_matches(&Cli::command().version(version::long()).get_matches())
        .unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Some(Command::Serve(args)) => serve(args),
        None => serve(cli.serve),
        Some(Command::User { config, action }) => users::user_command(action, config.as_deref()),
        Some(Command::GenerateDocs { dir }) => generate_docs(&dir),
        Some(Command::Upgrade { config }) => {
            return match Config::load(config.as_deref(), &Overrides::default()) {
                Ok(Config {
                    pid_file: Some(path),
                    ..
                }) => match pid_file::upgrade(&path) {
                    Ok(said) => {
                        println!("{said}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("yadokari upgrade: {e}");
                        ExitCode::FAILURE
                    }
                },
                Ok(_) => {
                    eprintln!(
                        "yadokari upgrade: the configuration has no [server] pid_file, so the running server cannot be found (send it SIGUSR2 instead)"
                    );
                    ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("yadokari: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Some(Command::Health { config, admin }) => {
            let overrides = Overrides {
                admin,
                ..Overrides::default()
            };
            return match Config::load(config.as_deref(), &overrides) {
                Ok(Config {
                    admin: Some(addr), ..
                }) => match metrics::health(addr) {
                    Ok(said) => {
                        println!("{said}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("yadokari health: {e}");
                        ExitCode::FAILURE
                    }
                },
                Ok(_) => {
                    eprintln!(
                        "yadokari health: the configuration has no [server] admin listener to ask"
                    );
                    ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("yadokari: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Some(Command::Explain { config, root, path }) => {
            let overrides = Overrides {
                root,
                ..Overrides::default()
            };
            return match Config::load(config.as_deref(), &overrides) {
                Ok(config) => explain::run(&config, &path),
                Err(e) => {
                    eprintln!("yadokari: {e}");
                    ExitCode::from(2)
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("yadokari: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The manual page and the bash, zsh and fish completions, from the clap definition itself (so
/// they never disagree with `--help`).
fn generate_docs(dir: &std::path::Path) -> anyhow::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot make {}", d.display()))?;
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    std::fs::write(man.join("yadokari.1"), page)?;
    for (shell, name) in [
        (clap_complete::Shell::Bash, "yadokari.bash"),
        (clap_complete::Shell::Zsh, "_yadokari"),
        (clap_complete::Shell::Fish, "yadokari.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "yadokari", &mut out);
        std::fs::write(completions.join(name), out)?;
    }
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    limit_malloc_arenas();
    // Every TLS client and server in the process (the HTTPS listener, ACME's client) uses
    // the one provider: rustls refuses to guess between two.
    let _ = tls::certs::provider().install_default();
    let source = ConfigSource {
        file: args.config.clone(),
        overrides: args.overrides(),
    };
    let config = source.load()?;
    // Before anything serves: a customer whose home is root's gets an identity of their own.
    let adopted = users::identity::adopt(&config, source.path().as_deref())?;
    let config = if adopted.is_empty() {
        config
    } else {
        source.load()?
    };
    let limit = descriptors::raise_limit().context("cannot read the open-file limit")?;
    descriptors::check(&config, limit).map_err(anyhow::Error::msg)?;
    let customer_logs = Arc::new(customer_log::CustomerLogs::new(&config));
    error_log::init(&config, customer_logs.clone())?;
    if let Some(file) = source.path() {
        let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
        metrics::watch_state_dir(dir.unwrap_or(std::path::Path::new(".")).to_path_buf());
    }
    source.warn_if_secrets_exposed(&config);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let access_log = AccessLog::open(&config.access_log).context("cannot open the access log")?;
    let sandboxes = Arc::new(sandbox::Sandboxes::new(&config));
    if config.sandbox.required
        && let Some(missing) = sandboxes.incomplete()
    {
        anyhow::bail!(
            "sandbox.required = true, but this server cannot isolate customers fully: {missing}"
        );
    }
    // Before any thread: the sockets a service manager handed over, checked.
    let inherited = systemd::inherited().map_err(anyhow::Error::msg)?;
    yadokari_site::identity::remember_process_groups();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // A thread made from one that held a customer's identity starts as the process.
        .on_thread_start(yadokari_site::identity::reset_thread)
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let signals = Signals::install()?;
        let mut inherited = inherited;
        let (http, sftp_listener) = bind(&config, &mut inherited).await?;
        banner(&config, http.local_addr()?);
        let (https, store) = bind_https(&config, inherited.https.take()).await?;
        let admin = bind_admin(&config, inherited.admin.take()).await?;
        let panel = bind_optional("panel", config.panel, inherited.panel.take()).await?;
        let handover = handover(&[
            ("http", Some(&http)),
            ("sftp", Some(&sftp_listener)),
            ("https", https.as_ref().map(|(l, _)| l)),
            ("admin", admin.as_ref()),
            ("panel", panel.as_ref()),
        ]);
        let https_addr = https.as_ref().map(|(l, _)| l.local_addr()).transpose()?;
        if let Some(addr) = https_addr {
            banner!("listening https={addr}");
        }
        for line in &adopted {
            banner!("{line}");
        }
        banner!("{}", sandboxes.describe());
        let shutdown = CancellationToken::new();
        let sftp = sftp::start(
            &config,
            source.file.as_deref(),
            sftp_listener,
            shutdown.clone(),
        )?;
        let app = Arc::new(App::new(
            config,
            source,
            (access_log, customer_logs),
            Some(sftp.endpoint.clone()),
            (store, https_addr),
            sandboxes,
        ));
        sftp.deployer.serve(&app);
        tokio::spawn(signals.handle(app.clone(), shutdown.clone(), handover));
        tokio::spawn(app.clone().watch_config_file());
        tokio::spawn(app.clone().watch_certificates());
        tokio::spawn(housekeeping(app.clone()));
        tokio::spawn(flush_customer_logs(app.clone()));
        tokio::spawn(acme::run(app.clone()));
        tokio::spawn(systemd::watchdog());
        if let Some(listener) = admin {
            tokio::spawn(metrics::serve(
                listener,
                shutdown.clone(),
                scrape(app.clone(), sftp.endpoint.clone()),
            ));
        }
        if let Some(listener) = panel {
            let tls = match app.config().panel_tls {
                true => Some(
                    tls::acceptor_for(app.tls.clone(), &[b"http/1.1"])
                        .context("cannot set up TLS for the panel")?,
                ),
                false => None,
            };
            tokio::spawn(panel::serve(listener, app.clone(), shutdown.clone(), tls));
        }
        let pid_path = app.config().pid_file.clone();
        if let Some(path) = &pid_path
            && let Err(e) = pid_file::write(path)
        {
            tracing::error!(file = %path.display(), error = %e, "cannot write the pid file");
        }
        systemd::ready(&app.status());
        match reaper::become_subreaper() {
            Ok(()) => {
                tokio::spawn(reaper::run(app.scripts.running()));
            }
            Err(e) => tracing::warn!(error = %e, "cannot become the reaper of scripts' leftovers; a script's daemons may outlive it"),
        }
        listener::run(http, https, app.clone(), shutdown).await;
        app.access_log.flush();
        sftp.stopped().await;
        // After the SFTP sessions: their last transfer lines go to customers' logs too.
        app.flush_logs().await;
        let sandboxes = app.sandboxes.clone();
        let _ = tokio::task::spawn_blocking(move || sandboxes.shutdown()).await;
        if let Some(path) = &pid_path {
            pid_file::remove(path);
        }
        tracing::info!("stopped");
        Ok(())
    })
}

/// What `/metrics` reads at each scrape: SFTP sessions, quota use and limits, certificates.
fn scrape(app: Arc<App>, endpoint: Arc<sftp_upload::Endpoint>) -> metrics::Scrape {
    Arc::new(move || {
        let state = app.state();
        metrics::Scraped {
            sftp_sessions: endpoint.sessions_running(),
            quota_used: endpoint
                .usage_counted()
                .into_iter()
                .map(|(user, u)| (user, u.bytes, u.files))
                .collect(),
            quota_limits: state
                .config
                .sftp_settings
                .users
                .iter()
                .filter(|u| u.quota.bytes.is_some() || u.quota.files.is_some())
                .map(|u| (u.name.clone(), u.quota.bytes, u.quota.files))
                .collect(),
            expiries: app.tls.current().expiries(),
        }
    })
}

/// Duplicates of the listeners, kept for an upgrade (SIGUSR2); `None` (with a warning) when
/// they cannot be duplicated.
fn handover(
    listeners: &[(&'static str, Option<&tokio::net::TcpListener>)],
) -> Option<Arc<upgrade::Handover>> {
    use std::os::fd::AsFd;
    let made = (|| {
        let mut sockets = Vec::new();
        for (name, listener) in listeners {
            if let Some(l) = listener {
                sockets.push((*name, l.as_fd().try_clone_to_owned()?));
            }
        }
        upgrade::Handover::new(sockets)
    })();
    match made {
        Ok(h) => Some(Arc::new(h)),
        Err(e) => {
            tracing::warn!(error = %e, "upgrades (SIGUSR2) are not possible");
            None
        }
    }
}

/// The HTTP and SFTP listeners: those the service manager handed over, else bound to the
/// configured addresses.
async fn bind(
    config: &Config,
    inherited: &mut systemd::Inherited,
) -> anyhow::Result<(tokio::net::TcpListener, tokio::net::TcpListener)> {
    let http = match inherited.http.take() {
        Some(l) => tokio::net::TcpListener::from_std(l).context("the handed-over HTTP socket")?,
        None => tokio::net::TcpListener::bind(config.http)
            .await
            .with_context(|| format!("cannot listen on {} for HTTP", config.http))?,
    };
    let sftp = match inherited.sftp.take() {
        Some(l) => tokio::net::TcpListener::from_std(l).context("the handed-over SFTP socket")?,
        None => tokio::net::TcpListener::bind(config.sftp)
            .await
            .with_context(|| format!("cannot listen on {} for SFTP", config.sftp))?,
    };
    Ok((http, sftp))
}

/// The admin listener when `server.admin` is set, with the metrics recorder installed.
async fn bind_admin(
    config: &Config,
    inherited: Option<std::net::TcpListener>,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    if config.admin.is_some() {
        metrics::install().map_err(anyhow::Error::msg)?;
    }
    bind_optional("admin", config.admin, inherited).await
}

/// The listener `role` (`admin`, `panel`) when its address is set: the one handed over, else
/// bound; its `listening ROLE=ADDR` line printed. A socket handed over for a role that is not
/// configured is refused, naming it.
async fn bind_optional(
    role: &str,
    addr: Option<std::net::SocketAddr>,
    inherited: Option<std::net::TcpListener>,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = addr else {
        if inherited.is_some() {
            anyhow::bail!(
                "socket activation handed over a `{role}` socket, but [server] {role} is not set"
            );
        }
        return Ok(None);
    };
    let listener = match inherited {
        Some(l) => tokio::net::TcpListener::from_std(l)
            .with_context(|| format!("the handed-over {role} socket"))?,
        None => tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for the {role} listener"))?,
    };
    banner!("listening {role}={}", listener.local_addr()?);
    Ok(Some(listener))
}

/// The HTTPS listener and its acceptor when `server.https` is set, after reading every
/// certificate the configuration names (a broken one stops the start, naming the file).
async fn bind_https(
    config: &Config,
    inherited: Option<std::net::TcpListener>,
) -> anyhow::Result<(
    Option<(tokio::net::TcpListener, tokio_rustls::TlsAcceptor)>,
    Arc<tls::CertStore>,
)> {
    let Some(addr) = config.https else {
        if inherited.is_some() {
            anyhow::bail!(
                "socket activation handed over an `https` socket, but [server] https is not set (the certificates come with it)"
            );
        }
        return Ok((None, Arc::new(tls::CertStore::new(tls::Table::empty()))));
    };
    let table = tls::Table::load(config)?;
    let store = Arc::new(tls::CertStore::new(table));
    let acceptor = tls::acceptor(store.clone()).context("cannot set up TLS")?;
    let listener = match inherited {
        Some(l) => tokio::net::TcpListener::from_std(l).context("the handed-over HTTPS socket")?,
        None => tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for HTTPS"))?,
    };
    Ok((Some((listener, acceptor)), store))
}

/// Flushes the access log a few times a second and hands free memory back every few seconds.
async fn housekeeping(app: Arc<App>) {
    let mut every = tokio::time::interval(access_log::FLUSH_EVERY);
    for tick in 0u64.. {
        every.tick().await;
        app.access_log.flush();
        if tick % TRIM_EVERY_TICKS == 0 {
            give_back_free_memory();
            metrics::upkeep();
            let released = app.sandboxes.release_idle();
            if released > 0 {
                tracing::debug!(released, "released idle customers' sandboxes");
            }
        }
    }
}

/// Flushes the customers' logs on the access log's timer, or sooner when a busy customer's
/// buffer fills up. Its own task, not a step of [`housekeeping`]: a customer's slow disk must
/// not hold up the global access log.
async fn flush_customer_logs(app: Arc<App>) {
    let mut every = tokio::time::interval(access_log::FLUSH_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = app.customer_logs.filling() => {}
        }
        let customers = app.customer_logs.clone();
        let _ = tokio::task::spawn_blocking(move || customers.flush()).await;
    }
}

/// Marks every descriptor above standard error close-on-exec, first thing: descriptors this
/// process inherited (`yadokari 7>>file`) would otherwise reach every script, across the switch
/// to the script's user.
fn close_inherited_descriptors() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors; nothing
    // else in the process holds them yet.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return;
    }
    // Older kernels: one fcntl per open descriptor.
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<i32> = fds
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd > 2)
            .collect();
        for fd in fds {
            // SAFETY: F_SETFD on a descriptor number; a closed one only gives EBADF.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

/// Caps glibc's malloc arenas at cores + 1, before any thread starts.
///
/// glibc gives threads up to 8 arenas per core, and `malloc_trim` cannot shrink the top of an
/// arena other than the main one, so every arena keeps what its last burst left there: after
/// one 256 MiB SFTP upload and download the server held 15 arenas and 21 MiB resident with
/// 0.3 MiB in use. With cores + 1 arenas it held 11-12 MiB, and neither the static rate (CPU per
/// 1 KiB request, A/B) nor the SFTP rate moved; with 2 arenas the static rate fell a few per
/// cent (threads contending for an arena's lock).
fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let arenas = libc::c_int::try_from(cores + 1).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets an allocator parameter; called before any other thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// How often (in access-log flush ticks of 200 ms) freed memory is handed back: every 2 s.
const TRIM_EVERY_TICKS: u64 = 10;

/// Hands memory that is free but kept by glibc's arenas back to the system.
///
/// Under CGI load each worker thread's arena grew by about 0.1 MiB a second while the memory
/// in use stayed under 1 MiB (malloc_stats: 13 MiB held, 0.9 MiB in use after a few minutes
/// at c=64): freed chunks between live ones are never at an arena's top, so glibc does not
/// trim them. `malloc_trim(0)` releases every free page (madvise), which took the resident
/// size from 16 to 9 MiB; doing it every 2 s costs a few page faults when the memory is
/// used again.
fn give_back_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases memory that is already free; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn banner(config: &Config, http: std::net::SocketAddr) {
    banner!(
        "yadokari {} serving {}",
        version::long(),
        config.document_root.display()
    );
    banner!("listening http={http}");
    banner!(
        "Open http://{}/ in a browser. `yadokari explain FILE` says why a file is served, run or refused.",
        banner::reachable(http)
    );
    if config.customers.len() > 1 && !nix::unistd::Uid::effective().is_root() {
        banner!(
            "not started as root: every customer's scripts and files are the server's own user, so customers are not isolated from each other"
        );
    }
}

/// The signals the server acts on, installed before it serves anything: a SIGHUP or SIGTERM
/// that arrives early must be handled, not take the default action (which ends the process).
/// SIGINT/SIGTERM: graceful stop. SIGHUP: re-read the configuration; a bad one is refused and
/// the old one kept. SIGUSR1: reopen the log files (after logrotate). SIGUSR2: upgrade to the
/// binary now on disk without dropping anything (`crate::upgrade`).
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            hup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
            usr1: signal(SignalKind::user_defined1()).context("cannot handle SIGUSR1")?,
            usr2: signal(SignalKind::user_defined2()).context("cannot handle SIGUSR2")?,
        })
    }

    /// Acts on signals until SIGINT or SIGTERM, which start the graceful shutdown, or until
    /// an upgrade's new server is ready, which starts the same drain.
    async fn handle(
        mut self,
        app: Arc<App>,
        shutdown: CancellationToken,
        handover: Option<Arc<upgrade::Handover>>,
    ) {
        let (upgraded, mut done) = tokio::sync::mpsc::channel::<i32>(1);
        loop {
            tokio::select! {
                _ = self.int.recv() => break,
                _ = self.term.recv() => break,
                _ = self.hup.recv() => app.hangup(),
                _ = self.usr1.recv() => app.reopen_logs(),
                _ = self.usr2.recv() => match &handover {
                    Some(h) => {
                        let (h, upgraded) = (h.clone(), upgraded.clone());
                        tokio::spawn(async move {
                            match h.upgrade().await {
                                Ok(pid) => {
                                    let _ = upgraded.send(pid).await;
                                }
                                Err(e) => tracing::error!(error = %e, "upgrade failed; this server keeps serving"),
                            }
                        });
                    }
                    None => tracing::error!("upgrade refused: the listening sockets could not be kept for it"),
                },
                Some(pid) = done.recv() => {
                    tracing::info!(new_pid = pid, "upgrade: the new server is ready; this one stops accepting and finishes what is in flight");
                    systemd::main_pid(pid);
                    shutdown.cancel();
                    return;
                }
            }
        }
        systemd::stopping();
        metrics::stopping();
        let delay = app.config().limits.stop_delay;
        if !delay.is_zero() {
            tracing::info!(
                delay_secs = delay.as_secs(),
                "stopping: the health check fails from now on; serving on for the stop delay so the load balancer moves away"
            );
            // A second SIGTERM or SIGINT ends the wait at once.
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = self.int.recv() => {}
                _ = self.term.recv() => {}
            }
        }
        shutdown.cancel();
        tracing::info!("shutting down: no new connections; letting in-flight requests finish");
    }
}
