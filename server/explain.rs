//! `yadokari explain PATH`: the gate's verdict on a file, in words, through the very same
//! resolution a request goes through.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use yadokari_site::Jail;

use crate::config::Config;
use crate::resolve::{self, Resolution, Script};
use crate::url::UrlPath;

/// Prints the verdict on `path`; exit 0 when it is served or run, 1 when it is refused or
/// missing, 2 when the question itself is wrong.
pub fn run(config: &Config, path: &Path) -> ExitCode {
    let url = match url_of(config, path) {
        Ok(u) => u,
        Err(problem) => {
            eprintln!("yadokari explain: {problem}");
            return ExitCode::from(2);
        }
    };
    let jail = match Jail::open(&config.document_root) {
        Ok(j) => j,
        Err(e) => {
            eprintln!(
                "yadokari explain: cannot open {}: {e}",
                config.document_root.display()
            );
            return ExitCode::from(2);
        }
    };
    let mut shown = String::from("/");
    shown.push_str(&String::from_utf8_lossy(&url.relative()));
    if url.trailing_slash && !url.segments.is_empty() {
        shown.push('/');
    }
    println!("{} (URL {shown})", path.display());
    match resolve::resolve(&jail, &url, config) {
        Resolution::NotFound => {
            println!("verdict: not found (404)");
            ExitCode::FAILURE
        }
        Resolution::AddSlash => {
            println!(
                "verdict: a directory; requests without the trailing slash are redirected (301) to {shown}/"
            );
            ExitCode::SUCCESS
        }
        Resolution::Static(file) => {
            println!("verdict: served as a static file ({})", file.rel.display());
            ExitCode::SUCCESS
        }
        Resolution::Fault { path, error } => {
            println!("verdict: the server cannot open {path}: {error} (500)");
            ExitCode::FAILURE
        }
        Resolution::Script(s) => script_verdict(config, &jail, &s),
        Resolution::Denied { denial, path } => {
            let e = resolve::explain(&denial, &path, config);
            println!("verdict: refused ({})", denial.status());
            println!("why: {}", e.reason);
            println!("fix: {}", e.fix);
            ExitCode::FAILURE
        }
    }
}

/// A script the gate lets run: whether it will really start (its handler installed, its `#!`
/// line sound), predicted without running it.
fn script_verdict(config: &Config, jail: &Jail, s: &Script) -> ExitCode {
    let path = s.rel.to_string_lossy().into_owned();
    let problem = crate::cgi::predict::predict(config, &config.document_root, jail, s);
    if let Some(problem) = problem {
        let (status, e) = problem.explain(&path);
        println!(
            "verdict: the permission bits let it run, but it will fail ({})",
            status.as_u16()
        );
        println!("why: {}", e.reason);
        println!("fix: {}", e.fix);
        return ExitCode::FAILURE;
    }
    match &s.interpreter {
        Some(i) => println!(
            "verdict: runs as a CGI script through {} ({path})",
            i.display()
        ),
        None => println!("verdict: runs as a CGI script ({path})"),
    }
    ExitCode::SUCCESS
}

/// The URL path asked about: a path outside the document root that starts with `/` is taken
/// as a URL path (`/cgi-bin/x.cgi`), anything else as a file of the site.
fn url_of(config: &Config, path: &Path) -> Result<UrlPath, String> {
    if let Some(text) = path.to_str()
        && text.starts_with('/')
        && !path.starts_with(&config.document_root)
    {
        return crate::url::parse(text).map_err(|e| e.to_string());
    }
    file_url(config, path)
}

/// The URL path of a file given as a filesystem path inside the document root. The parent is
/// canonicalised, not the file, so a symlink is judged as the link it is.
fn file_url(config: &Config, path: &Path) -> Result<UrlPath, String> {
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
    let rel = full.strip_prefix(&config.document_root).map_err(|_| {
        format!(
            "{} is not inside the document root {}",
            path.display(),
            config.document_root.display()
        )
    })?;
    use std::os::unix::ffi::OsStrExt;
    let segments: Vec<Vec<u8>> = rel
        .components()
        .map(|c| c.as_os_str().as_bytes().to_vec())
        .collect();
    Ok(UrlPath {
        trailing_slash: full.is_dir(),
        segments,
    })
}
