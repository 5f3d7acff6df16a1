//! A fake request for the tests of the directive families: variables, headers and a small
//! filesystem, answered through [`Context`] as the request path answers for real.

use super::super::context::FileTest;
use super::super::syntax::{Node, parse};
use super::{Context, Outcome, Problem, Rewrites};
use std::collections::{HashMap, HashSet};

/// A request as the engine sees it, with a small filesystem under `/srv/www`.
pub struct Fake {
    pub vars: HashMap<String, String>,
    pub headers: HashMap<String, String>,
    pub files: HashSet<String>,
    pub dirs: HashSet<String>,
}

pub const ROOT: &str = "/srv/www";

impl Fake {
    /// A GET for `path` on http://example.com.
    pub fn new(path: &str) -> Fake {
        let mut f = Fake {
            vars: HashMap::new(),
            headers: HashMap::new(),
            files: HashSet::new(),
            dirs: HashSet::new(),
        };
        for (k, v) in [
            ("REQUEST_SCHEME", "http"),
            ("HTTPS", "off"),
            ("SERVER_NAME", "example.com"),
            ("SERVER_PORT", "80"),
            ("REQUEST_METHOD", "GET"),
            ("DOCUMENT_ROOT", ROOT),
        ] {
            f.vars.insert(k.into(), v.into());
        }
        f.with_header("Host", "example.com");
        f.dirs.insert(format!("{ROOT}/"));
        f.at(path);
        f
    }

    /// Points the request at `path` (as the caller does after an internal rewrite).
    pub fn at(&mut self, path: &str) {
        self.vars.insert("REQUEST_URI".into(), path.into());
        self.vars
            .insert("REQUEST_FILENAME".into(), format!("{ROOT}{path}"));
    }

    pub fn with_header(&mut self, name: &str, value: &str) -> &mut Fake {
        self.headers.insert(name.to_ascii_lowercase(), value.into());
        self
    }

    pub fn file(&mut self, path: &str) -> &mut Fake {
        self.files.insert(format!("{ROOT}{path}"));
        self
    }

    pub fn dir(&mut self, path: &str) -> &mut Fake {
        self.dirs.insert(format!("{ROOT}{path}"));
        self
    }
}

impl Context for Fake {
    fn variable(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(&name.to_ascii_lowercase()).cloned()
    }
    fn file_test(&self, path: &str, test: FileTest) -> bool {
        let dir = self.dirs.contains(path) || self.dirs.contains(&format!("{path}/"));
        match test {
            FileTest::File | FileTest::NonEmptyFile => self.files.contains(path),
            FileTest::Directory => dir,
            FileTest::Symlink | FileTest::Executable => false,
        }
    }
}

/// Compiles the mod_rewrite lines of `text` (inside sections too, as `<IfModule>` is taken).
pub fn compile(text: &str) -> Result<Rewrites, (usize, Problem)> {
    fn walk(nodes: &[Node], rw: &mut Rewrites) -> Result<(), (usize, Problem)> {
        for node in nodes {
            match node {
                Node::Directive(line) if Rewrites::handles(&line.name) => {
                    rw.directive(line).map_err(|p| (line.number, p))?;
                }
                Node::Directive(_) => {}
                Node::Section { body, .. } => walk(body, rw)?,
            }
        }
        Ok(())
    }
    let nodes = parse(text).expect("splits");
    let mut rw = Rewrites::default();
    walk(&nodes, &mut rw)?;
    rw.finish()?;
    Ok(rw)
}

pub fn rules(text: &str) -> Rewrites {
    compile(text).unwrap_or_else(|(line, p)| panic!("line {line}: {p:?}"))
}

/// One pass for `path?query` in the directory at `dir`.
pub fn pass(rw: &Rewrites, dir: &str, fake: &Fake, path: &str, query: Option<&str>) -> Outcome {
    rw.apply(fake, dir, path, query).outcome
}
