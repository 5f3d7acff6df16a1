//! Push deploys: the SSH endpoint's `exec` requests that `sftp_upload::deploy` lets through
//! (`rsync --server`, `scp -t`/`-f`, `git-receive-pack`/`git-upload-pack`) are run here, as
//! scripts are: with the customer's identity (the owner of their home, as suEXEC picks a
//! script's), their resource limits, in their sandbox when one is in force (only their home
//! writable, no other home visible), in their home, with a minimal environment, in a process
//! group of their own that dies with the channel. No shell ever runs.
//!
//! Without a sandbox (`[sandbox] enabled = false`, or a kernel without namespaces) there is no
//! chroot either: rsync, scp and git need their libraries, locale and (for git) helper
//! programs, which a chroot would have to copy into every home and keep patched. What confines
//! such a program then is what confines a customer's shell on a traditional host, and what
//! confines their CGI scripts here: their own Unix identity (never a shared one, see below)
//! and its resource limits; and what it is asked to touch is checked before it starts, every
//! path argument resolved inside the home as the SFTP jail resolves it. It can read what the
//! customer's own account may read, no more; the sandbox is what hides the rest of the system.
//! Its writes are held to the quota: no file past the room left (`RLIMIT_FSIZE`, with
//! `SIGXFSZ` ignored so that the program fails the write and cleans up), and the SSH side
//! stops it when a recount finds the site over.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, OnceLock, Weak};

use sftp_upload::deploy::Deploy;
use sftp_upload::exec::{Started, Starting};

use crate::app::App;
use crate::cgi::child::Child;
use crate::cgi::spawn;

/// Where the deploy programs are looked for (the server's own choice: never a customer's PATH).
const BIN_DIRS: [&str; 3] = ["/usr/bin", "/bin", "/usr/local/bin"];

/// The endpoint's [`sftp_upload::exec::Deployer`]: the running server, once it exists (the SSH
/// endpoint starts before it).
#[derive(Clone, Default)]
pub struct Deployer {
    app: Arc<OnceLock<Weak<App>>>,
}

impl Deployer {
    /// Lets deploys run for `app`'s customers.
    pub fn serve(&self, app: &Arc<App>) {
        let _ = self.app.set(Arc::downgrade(app));
    }
}

impl sftp_upload::exec::Deployer for Deployer {
    fn start(&self, user: &str, deploy: &Deploy, file_size: Option<u64>) -> Starting {
        let app = self.app.get().and_then(Weak::upgrade);
        let (user, deploy) = (user.to_string(), deploy.clone());
        Box::pin(async move {
            let app = app.ok_or_else(|| "the server is not ready yet".to_string())?;
            start(&app, &user, &deploy, file_size).await
        })
    }
}

async fn start(
    app: &Arc<App>,
    user: &str,
    deploy: &Deploy,
    file_size: Option<u64>,
) -> Result<Started, String> {
    let state = app.state();
    let config = &state.config;
    let index = config
        .customers
        .iter()
        .position(|c| c.name == user)
        .ok_or_else(|| format!("`{user}` is not a customer of this server any more"))?;
    let customer = &config.customers[index];
    let home = &customer.home;
    let trouble = |what: &str, e: &dyn std::fmt::Display| {
        tracing::error!(user, home = %home.display(), error = %e, "deploy: {what}");
        format!("the server could not start {} ({what})", deploy.program)
    };
    let dir = nix::fcntl::open(
        home,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| trouble("cannot open the home", &e))?;
    let stat = nix::sys::stat::fstat(&dir).map_err(|e| trouble("cannot read the home", &e))?;
    let identity = crate::cgi::identity::for_owner(stat.st_uid, config)
        .map_err(|f| trouble("no identity to run as", &f))?;
    // SECURITY: a deploy program follows the links a customer planted; it must run with no
    // rights but the customer's own. A shared identity (the fallback user for a home owned by
    // a system account, or the server's own user when it is not root) could read what other
    // customers' scripts share with it.
    if identity.as_ref().map(|i| i.uid) != Some(stat.st_uid) {
        return Err(
            "push deploys run only as the customer's own identity, and this server has none for this home (it runs without root, or the home belongs to a system account)"
                .to_string(),
        );
    }
    let program = BIN_DIRS
        .iter()
        .map(|d| std::path::Path::new(d).join(deploy.program))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{} is not installed on this server", deploy.program))?;
    let shell = app
        .sandboxes
        .shell(config, index)
        .await
        .map_err(|e| trouble("cannot build the sandbox", &e))?;
    let c = |bytes: &[u8]| CString::new(bytes).map_err(|_| "a NUL byte in the command".to_string());
    let mut argv = vec![c(deploy.program.as_bytes())?];
    for arg in &deploy.args {
        argv.push(c(arg)?);
    }
    // git reads no configuration but the repository's: a customer's ~/.gitconfig could name
    // programs for the server side to run (uploadpack.packObjectsHook). A receiving
    // repository's own hooks do run, as the customer, as their CGI scripts do.
    let mut envp = vec![
        c(b"PATH=/usr/bin:/bin")?,
        c(b"LANG=C.UTF-8")?,
        c(b"GIT_CONFIG_NOSYSTEM=1")?,
        c(b"GIT_CONFIG_GLOBAL=/dev/null")?,
        c(format!("USER={user}").as_bytes())?,
        c(format!("LOGNAME={user}").as_bytes())?,
    ];
    let mut home_var = b"HOME=".to_vec();
    home_var.extend_from_slice(home.as_os_str().as_bytes());
    envp.push(c(&home_var)?);
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
            .map_err(|e| trouble("cannot make a pipe", &e))
    };
    let (stdin_r, stdin_w) = pipe()?;
    let (stdout_r, stdout_w) = pipe()?;
    let (stderr_r, stderr_w) = pipe()?;
    // The child's ends block, as a program expects of its standard descriptors.
    for fd in [&stdin_r, &stdout_w, &stderr_w] {
        let _ = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
        );
    }
    let home_c = crate::sandbox::c_dir(home).ok_or_else(|| "a NUL byte in the home".to_string())?;
    let spec = spawn::Spec {
        program: c(program.as_os_str().as_bytes())?,
        argv,
        envp,
        dir: dir.as_fd(),
        nofollow: false,
        stdio: [stdin_r.as_fd(), stdout_w.as_fd(), stderr_w.as_fd()],
        identity: identity.as_ref(),
        limits: customer.limits,
        file_size,
        join: shell.as_ref().map(|s| {
            s.join(
                s.has_mounts()
                    .then_some((&home_c, (stat.st_dev, stat.st_ino))),
            )
        }),
    };
    let spawned = spawn::spawn(&spec);
    drop((stdin_r, stdout_w, stderr_w));
    let spawned = spawned.map_err(|e| trouble("spawn failed", &e.error))?;
    // Owned as a script is (the reaper of leftovers leaves it alone; dropped, it is killed with
    // its group and reaped), without taking a script's place.
    let mut child = Child::new(spawned, app.scripts.unmetered())
        .map_err(|e| trouble("cannot watch the program", &e))?;
    // The shell stays held while the program runs (its descriptors were only borrowed).
    let exit = Box::pin(async move {
        let _shell = shell;
        child.exited().await;
        child.kill_and_reap().await;
        // As a shell reports it: 128 + the signal for one a signal ended.
        match child.status() {
            Some(spawn::ExitStatus::Code(code)) => code as u32,
            Some(spawn::ExitStatus::Signal(sig)) => 128 + sig as u32,
            None => 1,
        }
    });
    Ok(Started {
        stdio: [stdin_w, stdout_r, stderr_r],
        exit,
    })
}
