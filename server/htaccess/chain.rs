//! The `.htaccess` files that apply to one request: those of every directory from the site's
//! web root down to the requested file's, in that order, and what they add up to
//! ([`Chain::rules`]): each directory's settings over its parent's, then the `<Limit>`
//! sections for the request's method, then the `<Files>` sections matching the file's name
//! (Apache applies `<Files>` after all directories).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use yadokari_site::Jail;

use super::cache::{Broken, Cache, Loaded, Place};
use super::file::Htaccess;
use super::redirect::Redirects;
use super::rewrite::Rewrites;
use super::rules::Rules;
use crate::url::UrlPath;

/// One directory that has a `.htaccess`.
#[derive(Clone, Debug)]
pub struct Level {
    /// The directory's URL path in the site, with its slashes (`/`, `/blog/`).
    pub url: String,
    /// Its path relative to the web root.
    pub rel: PathBuf,
    pub file: Arc<Htaccess>,
}

/// A line of one of the files, that decided something.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    pub level: &'a Level,
    pub line: usize,
    /// The line as written (name and arguments), when it was kept.
    pub text: &'a str,
}

impl std::fmt::Display for Origin<'_> {
    /// `the .htaccess in /private/ (line 3: `Require all denied`)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the .htaccess in {} (line {}", self.level.url, self.line)?;
        if !self.text.is_empty() {
            write!(f, ": `{}`", self.text)?;
        }
        f.write_str(")")
    }
}

/// The files of one request's path, shallowest first.
#[derive(Debug, Default)]
pub struct Chain {
    pub levels: Vec<Level>,
    /// The segment the walk found not to be a directory (a file, with path info after it).
    pub file_at: Option<usize>,
    /// [`Chain::merged`]'s answers by file name and method, for a chain kept whole (a few
    /// names per directory are asked for again and again).
    memo: std::sync::RwLock<Vec<Memo>>,
}

/// One remembered [`Chain::merged`] answer: the file name, the method, the rules.
type Memo = (Option<Box<str>>, Box<str>, Arc<Rules>);

/// Answers a chain remembers; past this it asks the cache.
const MEMO: usize = 32;

impl Chain {
    /// The chain for `url` in the site held by `jail` (root `root`): the directories the URL
    /// passes through (its last segment too when it ends in a slash), or the first unusable
    /// file on the way.
    ///
    /// A chain made only of answers inotify watches is kept whole, and given again while
    /// nothing changed (see `super::watch`): most requests walk nothing.
    pub fn of(
        cache: &Cache,
        jail: &Jail,
        root: &Path,
        url: &UrlPath,
    ) -> Result<Arc<Chain>, Arc<Broken>> {
        let dirs = if url.trailing_slash {
            url.segments.len()
        } else {
            url.segments.len().saturating_sub(1)
        };
        let site = super::cache::site_key(root);
        if dirs == 0 {
            // Only the web root's own file: one `fstatat` costs less than draining the inotify
            // queue and looking up a kept chain.
            let (chain, _) = Chain::walk(cache, jail, site, url, 0, false)?;
            return Ok(Arc::new(chain));
        }
        cache.refresh();
        let walked = &url.segments[..dirs];
        if let Some(chain) = cache.chain(site, walked) {
            return Ok(chain);
        }
        let generation = cache.generation();
        let (chain, durable) = Chain::walk(cache, jail, site, url, dirs, true)?;
        let chain = Arc::new(chain);
        if let Some(generation) = generation
            && durable
        {
            cache.keep_chain(site, walked, generation, &chain);
        }
        Ok(chain)
    }

    /// Looks at each directory of the first `dirs` segments of `url`, through what inotify
    /// keeps when `kept` (else asking the file system); also says whether every answer was a
    /// kept one.
    fn walk(
        cache: &Cache,
        jail: &Jail,
        site: u64,
        url: &UrlPath,
        dirs: usize,
        kept: bool,
    ) -> Result<(Chain, bool), Arc<Broken>> {
        let mut levels = Vec::new();
        let mut file_at = None;
        let mut durable = true;
        let mut rel = PathBuf::new();
        let mut url_path = String::from("/");
        for i in 0..=dirs {
            if i > 0 {
                let segment = &url.segments[i - 1];
                rel.push(OsStr::from_bytes(segment));
                url_path.push_str(&String::from_utf8_lossy(segment));
                url_path.push('/');
            }
            // `rel/.htaccess`, without a new path for every level.
            rel.push(super::cache::NAME);
            let (place, answer_kept) = match kept {
                true => cache.place(jail, site, &rel),
                false => (cache.look(jail, site, &rel), false),
            };
            durable &= answer_kept;
            rel.pop();
            match place {
                Place::End => {
                    file_at = i.checked_sub(1);
                    break;
                }
                Place::Dir(Loaded::Absent) => {}
                Place::Dir(Loaded::File(file)) => levels.push(Level {
                    url: url_path.clone(),
                    rel: rel.clone(),
                    file,
                }),
                Place::Dir(Loaded::Fault(broken)) => return Err(broken),
            }
        }
        let chain = Chain {
            levels,
            file_at,
            memo: Default::default(),
        };
        Ok((chain, durable))
    }

    /// Whether no directory on the way has a file (the common, cheap case).
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// What the files say for the file named `name` (the last segment of the path; `None` for
    /// a directory) and the request `method`.
    pub fn rules(&self, name: Option<&str>, method: &str) -> Rules {
        let mut rules = Rules::default();
        for (_, r) in self.scopes(name, method) {
            rules.merge(r);
        }
        rules
    }

    /// [`Chain::rules`], merged once per set of scopes and kept in `cache`.
    pub fn merged(&self, cache: &Cache, name: Option<&str>, method: &str) -> Arc<Rules> {
        if let Ok(memo) = self.memo.read()
            && let Some((_, _, rules)) = memo
                .iter()
                .find(|(n, m, _)| n.as_deref() == name && &**m == method)
        {
            return rules.clone();
        }
        let rules = self.merged_in(cache, name, method);
        if let Ok(mut memo) = self.memo.write()
            && memo.len() < MEMO
        {
            memo.push((name.map(Box::from), Box::from(method), rules.clone()));
        }
        rules
    }

    /// [`Chain::merged`] without the chain's own memory.
    fn merged_in(&self, cache: &Cache, name: Option<&str>, method: &str) -> Arc<Rules> {
        let key: Vec<usize> = self
            .scopes(name, method)
            .map(|(_, r)| r as *const Rules as usize)
            .collect();
        cache.merged(
            key,
            || self.levels.iter().map(|l| l.file.clone()).collect(),
            || self.rules(name, method),
        )
    }

    /// The scopes that apply to the file named `name` and `method`, in the order they are
    /// merged: each directory's file with its matching `<Limit>` sections, then the matching
    /// `<Files>` sections of every file (Apache applies `<Files>` after all directories).
    fn scopes<'a, 'b>(
        &'a self,
        name: Option<&'b str>,
        method: &'b str,
    ) -> impl Iterator<Item = (&'a Level, &'a Rules)> {
        let dirs = self.levels.iter().flat_map(move |level| {
            let limits = level
                .file
                .limits
                .iter()
                .filter_map(move |(methods, except, r)| {
                    (methods.iter().any(|m| m == method) != *except).then_some((level, r))
                });
            std::iter::once((level, &level.file.rules)).chain(limits)
        });
        let files = self.levels.iter().flat_map(move |level| {
            level
                .file
                .files
                .iter()
                .filter_map(move |(m, r)| name.filter(|n| m.matches(n)).map(|_| (level, r)))
        });
        dirs.chain(files)
    }

    /// Where the setting in force for the file named `name` and `method` was said: the last
    /// scope, in merge order, for which `said` gives a line (0: not said there), as the file's
    /// level, the line and its text. For `explain`, the transfer log and the listings.
    pub fn origin(
        &self,
        name: Option<&str>,
        method: &str,
        said: impl Fn(&Rules) -> usize,
    ) -> Option<Origin<'_>> {
        self.scopes(name, method)
            .filter_map(|(level, r)| {
                let line = said(r);
                (line != 0).then_some((level, line))
            })
            .last()
            .map(|(level, line)| Origin {
                level,
                line,
                text: level.file.line_text(line).unwrap_or(""),
            })
    }

    /// Whether any file on the path rewrites or redirects (else there is nothing to try).
    pub fn moves_urls(&self) -> bool {
        self.levels
            .iter()
            .any(|l| l.file.rewrites.is_set() || !l.file.redirects.is_empty())
    }

    /// The rewrite rules in force: those of every file that has any, merged top down as Apache
    /// does (a file's own rules unless it inherits), with the URL of the deepest such file's
    /// directory, against which patterns match.
    pub fn rewrites(&self) -> Option<(&str, Rewrites)> {
        let mut merged: Option<(&str, Rewrites)> = None;
        for level in self.levels.iter().filter(|l| l.file.rewrites.is_set()) {
            let next = match &merged {
                Some((_, parent)) => Rewrites::merge(parent, &level.file.rewrites),
                None => level.file.rewrites.clone(),
            };
            merged = Some((&level.url, next));
        }
        merged
    }

    /// The redirects in force: every file's, the deepest first.
    pub fn redirects(&self) -> Redirects {
        self.levels
            .iter()
            .fold(Redirects::default(), |parent, level| {
                Redirects::merge(&parent, &level.file.redirects)
            })
    }

    /// The warnings the files carry (skipped `php_value` lines), with their file.
    pub fn warnings(&self) -> impl Iterator<Item = (String, &str)> {
        self.levels.iter().flat_map(|l| {
            let path = format!("{}{}", l.url, super::cache::NAME);
            l.file
                .warnings
                .iter()
                .map(move |w| (path.clone(), w.as_str()))
        })
    }
}
