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

/// The files of one request's path, shallowest first.
#[derive(Clone, Debug, Default)]
pub struct Chain {
    pub levels: Vec<Level>,
}

impl Chain {
    /// The chain for `url` in the site held by `jail` (root `root`): the directories the URL
    /// passes through (its last segment too when it ends in a slash), or the first unusable
    /// file on the way.
    pub fn of(
        cache: &Cache,
        jail: &Jail,
        root: &Path,
        url: &UrlPath,
    ) -> Result<Chain, Arc<Broken>> {
        let dirs = if url.trailing_slash {
            url.segments.len()
        } else {
            url.segments.len().saturating_sub(1)
        };
        let mut levels = Vec::new();
        let site = super::cache::site_key(root);
        let mut rel = PathBuf::new();
        let mut url_path = String::from("/");
        for i in 0..=dirs {
            if i > 0 {
                let segment = &url.segments[i - 1];
                rel.push(OsStr::from_bytes(segment));
                url_path.push_str(&String::from_utf8_lossy(segment));
                url_path.push('/');
            }
            match cache.place(jail, site, &rel) {
                Place::End => break,
                Place::Dir(Loaded::Absent) => {}
                Place::Dir(Loaded::File(file)) => levels.push(Level {
                    url: url_path.clone(),
                    rel: rel.clone(),
                    file,
                }),
                Place::Dir(Loaded::Fault(broken)) => return Err(broken),
            }
        }
        Ok(Chain { levels })
    }

    /// Whether no directory on the way has a file (the common, cheap case).
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// What the files say for the file named `name` (the last segment of the path; `None` for
    /// a directory) and the request `method`.
    pub fn rules(&self, name: Option<&str>, method: &str) -> Rules {
        let mut rules = Rules::default();
        for level in &self.levels {
            rules.merge(&level.file.rules);
            for (methods, except, r) in &level.file.limits {
                if methods.iter().any(|m| m == method) != *except {
                    rules.merge(r);
                }
            }
        }
        if let Some(name) = name {
            for level in &self.levels {
                for (m, r) in &level.file.files {
                    if m.matches(name) {
                        rules.merge(r);
                    }
                }
            }
        }
        rules
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
