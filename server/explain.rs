//! `yadokari explain PATH`: the verdict on a file, in words, through the very steps a request
//! goes through (`crate::forecast`): the `.htaccess` files on its path, naming the file and line
//! that decided, then resolution, the gate and whether a script would start. Access is judged
//! for a visitor with no login; what depends on the request (rewrites, addresses) is noted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use yadokari_site::Jail;

use crate::config::Config;
use crate::forecast::{self, Site, Verdict, Visitor};
use crate::htaccess::cache::Cache;
use crate::sites::Route;
use crate::url::UrlPath;

/// Prints the verdict on `path`; exit 0 when it is served or run, 1 when it is refused or
/// missing, 2 when the question itself is wrong.
pub fn run(config: &Config, path: &Path) -> ExitCode {
    let (root, url) = match url_of(config, path) {
        Ok(found) => found,
        Err(problem) => {
            eprintln!("yadokari explain: {problem}");
            return ExitCode::from(2);
        }
    };
    // A customer's web root is opened as a request opens it: beneath their home, a link to a
    // release followed to where it leads now, no other link.
    let customer = config.customers.iter().find(|c| c.web_root == root);
    let opened = match customer {
        Some(c) => match &c.web_root_link {
            Some(link) => crate::web_root::resolve(&c.home, link),
            None => crate::web_root::open_plain(&c.home, &root),
        },
        None => Jail::open(&root)
            .map(|j| crate::web_root::SiteRoot {
                jail: std::sync::Arc::new(j),
                root: std::sync::Arc::from(root.as_path()),
            })
            .map_err(|e| format!("cannot open {}: {e}", root.display())),
    };
    let (jail, root) = match opened {
        Ok(now) => (now.jail, now.root.to_path_buf()),
        Err(e) => {
            eprintln!("yadokari explain: {e}");
            return ExitCode::from(2);
        }
    };
    let mut shown = String::from("/");
    shown.push_str(&String::from_utf8_lossy(&url.relative()));
    if url.trailing_slash && !url.segments.is_empty() {
        shown.push('/');
    }
    println!("{} (URL {shown})", path.display());
    let cache = Cache::for_config(config);
    let site = Site {
        config,
        cache: cache.as_ref(),
        jail: &jail,
        root: &root,
        proposed_mode: None,
    };
    let forecast = forecast::forecast(&site, &url, &Visitor::ANYONE);
    print_verdict(&forecast.verdict, &shown);
    for note in &forecast.notes {
        println!("note: {note}");
    }
    if matches!(
        forecast.verdict,
        Verdict::Runs { .. } | Verdict::Fails { .. }
    ) && root != config.document_root
        && let Some(customer) = customer
    {
        println!("sandbox: {}", crate::sandbox::forecast(config, customer));
    }
    if forecast.verdict.works() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The verdict in words: one `verdict:` line, and `why:`/`fix:` for a refusal.
fn print_verdict(verdict: &Verdict, shown: &str) {
    let by = |by: &Option<String>| by.as_ref().map_or(String::new(), |b| format!(", by {b}"));
    match verdict {
        Verdict::NotFound => println!("verdict: not found (404)"),
        Verdict::AddSlash => println!(
            "verdict: a directory; requests without the trailing slash are redirected (301) to {shown}/"
        ),
        Verdict::Served { rel, by: b } => {
            println!("verdict: served as a static file ({rel}){}", by(b))
        }
        Verdict::Listed { by } => println!("verdict: a directory listing is sent, by {by}"),
        Verdict::Runs {
            rel,
            interpreter,
            by: b,
        } => match interpreter {
            Some(i) => println!(
                "verdict: runs as a CGI script through {} ({rel}){}",
                i.display(),
                by(b)
            ),
            None => println!("verdict: runs as a CGI script ({rel}){}", by(b)),
        },
        Verdict::Fails { status, why } => {
            println!("verdict: the permission bits let it run, but it will fail ({status})");
            println!("why: {}", why.reason);
            println!("fix: {}", why.fix);
        }
        Verdict::Refused { status, why } => {
            println!("verdict: refused ({status})");
            println!("why: {}", why.reason);
            println!("fix: {}", why.fix);
        }
        Verdict::Redirected {
            status,
            location,
            by,
        } => println!("verdict: redirected ({status}) to {location}, by {by}"),
        Verdict::Login { realm, by, then } => {
            println!("verdict: asks for a login first (401, realm \"{realm}\"), by {by}");
            println!("then, for a user it lets in:");
            print_verdict(then, shown);
        }
        Verdict::Fault { path, error } => {
            println!("verdict: the server cannot open {path}: {error} (500)")
        }
    }
}

/// The site asked about and the URL path in it: a path that starts with `/` and lies in no
/// site is a URL path (`/cgi-bin/x.cgi`, `/~alice/x.cgi`), anything else a file of the site
/// (the document root or a user's) that holds it.
fn url_of(config: &Config, path: &Path) -> Result<(PathBuf, UrlPath), String> {
    let in_a_site = roots(config).any(|r| path.starts_with(r));
    if let Some(text) = path.to_str()
        && text.starts_with('/')
        && !in_a_site
    {
        let parse = |p: &str| crate::url::parse(p).map_err(|e| e.to_string());
        return match config.sites.route(|| None, text) {
            Route::UserDir { index, rest, .. } => {
                Ok((config.sites.root(index).clone(), parse(rest)?))
            }
            Route::UserDirSlash => {
                let name = text.trim_start_matches("/~");
                Err(format!("{text} is a directory: ask about /~{name}/"))
            }
            Route::NoSuchUser => Err(format!("there is no user for {text}")),
            Route::Default | Route::Domain(_) => Ok((config.document_root.clone(), parse(text)?)),
        };
    }
    file_url(config, path)
}

/// Every site's root: the document root and each user's.
fn roots(config: &Config) -> impl Iterator<Item = &PathBuf> {
    std::iter::once(&config.document_root)
        .chain((0..config.sites.len()).map(|i| config.sites.root(i)))
}

/// The site holding a file given as a filesystem path (the deepest root that holds it) and the
/// file's URL path there. The parent is canonicalised, not the file, so a symlink is judged as
/// the link it is.
fn file_url(config: &Config, path: &Path) -> Result<(PathBuf, UrlPath), String> {
    let absolute = std::env::current_dir()
        .map_err(|e| e.to_string())?
        .join(path);
    let (dir, name) = match (absolute.parent(), absolute.file_name()) {
        (Some(dir), Some(name)) if name != ".." => (dir.to_path_buf(), Some(name.to_os_string())),
        _ => (absolute.clone(), None),
    };
    let dir: PathBuf =
        std::fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut full = dir;
    if let Some(name) = name {
        full.push(name);
    }
    let full = if full.is_dir() {
        std::fs::canonicalize(&full).unwrap_or(full)
    } else {
        full
    };
    let root = roots(config)
        .filter(|r| full.starts_with(r))
        .max_by_key(|r| r.components().count())
        .ok_or_else(|| {
            format!(
                "{} is not inside the document root {} or a user's site",
                path.display(),
                config.document_root.display()
            )
        })?;
    let rel = full.strip_prefix(root).map_err(|e| e.to_string())?;
    use std::os::unix::ffi::OsStrExt;
    let segments: Vec<Vec<u8>> = rel
        .components()
        .map(|c| c.as_os_str().as_bytes().to_vec())
        .collect();
    let url = UrlPath {
        trailing_slash: full.is_dir(),
        segments,
    };
    Ok((root.clone(), url))
}
