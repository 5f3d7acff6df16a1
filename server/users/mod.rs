//! `yadokari user ...`: the customers kept in the configuration file. Edits keep the file's
//! comments and layout (toml_edit), are validated by the same loader the server uses before the
//! file is replaced (atomically, [`edit`]), and a running server picks them up by itself within
//! seconds (see `crate::app`). Passwords are prompted without echo, or read from standard input
//! when it is not a terminal, never taken from the command line.
//!
//! `add` makes a customer's home with its web root, `cgi-bin/` and `logs/`, and (as root) gives
//! it an identity of its own ([`identity`]); `key`/`passwd` set credentials ([`credentials`]);
//! `domain`, `quota` and `remove` change an entry ([`entry`]); `list` shows them ([`list`]).

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::config::{Config, Overrides};

mod add;
mod credentials;
pub(crate) mod edit;
mod entry;
pub mod identity;
mod list;
mod repo;

pub(crate) use credentials::{add_key_text, remove_key, set_password};
pub use edit::{config_file, edit_config, user_entry};

/// `yadokari user ...`
#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a customer: a home with public_html/ and logs/, and (as root) an identity of their own.
    Add {
        name: String,
        /// A domain that reaches their site (repeat for more; `*.example.org` allowed).
        #[arg(long = "domain", value_name = "D")]
        domains: Vec<String>,
        /// Their home (default: `[hosting] homes`/NAME); it must not exist yet.
        #[arg(long, value_name = "DIR", conflicts_with = "site")]
        home: Option<PathBuf>,
        /// An existing ordinary account to be their identity (as root; default: a uid of
        /// their own from `[hosting] uid_range`).
        #[arg(long, value_name = "NAME")]
        unix_user: Option<String>,
        /// An existing directory that is both their home and their web root (as the demo
        /// user's); its owner is their identity.
        #[arg(long, value_name = "DIR")]
        site: Option<PathBuf>,
    },
    /// Add the OpenSSH public key(s) in FILE to NAME's authorized_keys.
    Key { name: String, file: PathBuf },
    /// Set NAME's password (prompted; read from stdin when it is not a terminal).
    Passwd { name: String },
    /// Add or remove one of NAME's domains.
    Domain {
        name: String,
        #[arg(value_parser = ["add", "remove"])]
        action: String,
        domain: String,
    },
    /// Set NAME's quota; `none` removes a limit.
    Quota {
        name: String,
        /// Bytes their home may hold.
        #[arg(long, value_name = "N")]
        bytes: Option<String>,
        /// Files and directories their home may hold.
        #[arg(long, value_name = "N")]
        files: Option<String>,
    },
    /// List the customers: identity, home, domains, usage against quota, keys, password.
    List,
    /// Push deploys: a git repository whose pushes publish NAME's site.
    Repo {
        name: String,
        #[command(subcommand)]
        action: RepoAction,
    },
    /// Remove a customer: logins and serving stop at once; their files stay unless --purge.
    Remove {
        name: String,
        /// Also delete their home.
        #[arg(long)]
        purge: bool,
    },
}

/// `yadokari user repo NAME ...`
#[derive(Subcommand)]
pub enum RepoAction {
    /// Make ~/repos/SITE.git: a push to its branch publishes the tree as a new release in
    /// ~/releases/ and switches the web root (a link) to it in one step.
    Add {
        site: String,
        /// The branch whose pushes are published.
        #[arg(long, default_value = "main")]
        branch: String,
        /// How many releases are kept (the one served among them).
        #[arg(long, default_value_t = repo::DEFAULT_KEEP)]
        keep: usize,
    },
}

/// Runs a `user` subcommand against the configuration file.
pub fn user_command(cmd: UserCommand, file: Option<&Path>) -> anyhow::Result<()> {
    let path = config_file(file)?;
    // Adding a customer or a repository reads the configuration (free identities, existing
    // entries) before it edits it: the whole command holds the edit lock.
    let _lock = match &cmd {
        UserCommand::Add { .. } | UserCommand::Repo { .. } => Some(edit::lock_for_edit(&path)?),
        _ => None,
    };
    match cmd {
        UserCommand::Add {
            name,
            domains,
            home,
            unix_user,
            site,
        } => add::add(
            &path,
            &add::NewCustomer {
                name,
                domains,
                home,
                unix_user,
                site,
            },
        ),
        UserCommand::Key { name, file } => credentials::key(&path, &name, &file),
        UserCommand::Passwd { name } => credentials::passwd(&path, &name),
        UserCommand::Domain {
            name,
            action,
            domain,
        } => entry::domain(&path, &name, action == "add", &domain),
        UserCommand::Quota { name, bytes, files } => {
            entry::quota(&path, &name, bytes.as_deref(), files.as_deref())
        }
        UserCommand::List => list::list(&path),
        UserCommand::Repo {
            name,
            action: RepoAction::Add { site, branch, keep },
        } => repo::add(
            &path,
            &repo::NewRepo {
                name: &name,
                site: &site,
                branch: &branch,
                keep,
            },
        ),
        UserCommand::Remove { name, purge } => entry::remove(&path, &name, purge),
    }
}

/// The configuration at `path`, as the server would load it.
fn load(path: &Path) -> anyhow::Result<Config> {
    Ok(Config::load(Some(path), &Overrides::default())?)
}
