//! The settings one `.htaccess` (or one `<Files>` section of it) makes, and how a deeper one
//! overrides a shallower one, as Apache merges per-directory configurations: a setting given
//! replaces the inherited one, lists (handlers, types, headers) add to it, and `Require` in a
//! deeper file replaces the shallower file's (`AuthMerging Off`, Apache's default).

use super::access::{Compat, Require};
use super::content::{ErrorDocument, Handler, Options};
use super::headers::{Expires, HeaderAction};
use super::syntax::Line;

/// One scope's settings; `None`/empty is "not said here".
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// `AuthType Basic` (`Some(false)`: `AuthType None`).
    pub auth_basic: Option<bool>,
    /// `AuthName`.
    pub auth_name: Option<String>,
    /// `AuthUserFile`, as written.
    pub auth_user_file: Option<String>,
    /// The `Require` lines (several side by side are any of them).
    pub require: Option<Require>,
    /// `Order`/`Allow`/`Deny`.
    pub compat: Option<Compat>,
    /// `Satisfy Any` (true) or `All`.
    pub satisfy_any: Option<bool>,
    /// `DirectoryIndex` (`Some(empty)`: `disabled`).
    pub directory_index: Option<Vec<String>>,
    /// `Options`.
    pub options: Options,
    /// `ErrorDocument`, by status.
    pub error_documents: Vec<(u16, ErrorDocument)>,
    /// `AddHandler`: extension (with its dot, lowercase) → handler, and the line that said so.
    pub add_handler: Vec<(String, Handler, usize)>,
    /// `SetHandler`.
    pub set_handler: Option<Handler>,
    /// `AddType`: extension → media type.
    pub add_type: Vec<(String, String)>,
    /// `ForceType` (`Some(None)`: `ForceType None`).
    pub force_type: Option<Option<String>>,
    /// `DefaultType`.
    pub default_type: Option<String>,
    /// `AddDefaultCharset` (`Some(None)`: Off).
    pub default_charset: Option<Option<String>>,
    /// `SetEnv`: variables for scripts.
    pub set_env: Vec<(String, String)>,
    /// `Header` actions, in order.
    pub headers: Vec<HeaderAction>,
    /// `Expires*`.
    pub expires: Expires,
    /// `IndexIgnore`: wildcard patterns of names a listing leaves out.
    pub index_ignore: Vec<String>,
    /// `IndexIgnoreReset On`: the inherited `IndexIgnore` patterns are dropped here.
    pub index_ignore_reset: bool,
    /// Where this scope said what it said (see [`Lines`]).
    pub lines: Lines,
}

/// The line of one scope's file that said each setting `explain`, the SFTP transfer log and the
/// listings name when it decides (0: not said in this scope). Only line numbers: the files are
/// named by the chain that merges them ([`super::chain::Chain::origin`]), and the merged rules
/// of a request carry the deepest scope's lines, which costs a copy of a few integers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lines {
    /// The first `Require` line (or requirement section).
    pub require: usize,
    /// The first `Order`, `Allow` or `Deny` line.
    pub compat: usize,
    /// The first `Deny` line.
    pub deny: usize,
    /// The first `AuthType`, `AuthName` or `AuthUserFile` line.
    pub auth: usize,
    /// The last `Options` line that set `ExecCGI` (or all options).
    pub exec_cgi: usize,
    /// The last `Options` line that set `Indexes` (or all options).
    pub indexes: usize,
    /// The last `SetHandler` line.
    pub set_handler: usize,
    /// The last `DirectoryIndex` line.
    pub directory_index: usize,
}

impl Lines {
    /// Notes that `line`, a directive just applied, said what it says; `before` and `after`
    /// are the scope's options around it. Whether the line is one these lines point at (its
    /// text is then kept, for messages).
    pub fn note(&mut self, line: &Line, before: &Options, after: &Options) -> bool {
        fn first(at: &mut usize, number: usize) -> bool {
            if *at == 0 {
                *at = number;
            }
            *at == number
        }
        let number = line.number;
        // `Options +Indexes` says nothing about ExecCGI: only what the line names (or resets).
        let names = |option: &str| {
            line.args.iter().any(|a| {
                let a = a.trim_start_matches(['+', '-']).to_ascii_lowercase();
                a == option || a == "all" || a == "none"
            }) || line.args.iter().any(|a| !a.starts_with(['+', '-']))
        };
        match line.name.to_ascii_lowercase().as_str() {
            "require" => first(&mut self.require, number),
            "order" | "allow" => first(&mut self.compat, number),
            "deny" => first(&mut self.compat, number) | first(&mut self.deny, number),
            "authtype" | "authname" | "authuserfile" => first(&mut self.auth, number),
            "sethandler" => {
                self.set_handler = number;
                true
            }
            "directoryindex" => {
                self.directory_index = number;
                true
            }
            "options" => {
                if before.exec_cgi != after.exec_cgi || names("execcgi") {
                    self.exec_cgi = number;
                }
                if before.indexes != after.indexes || names("indexes") {
                    self.indexes = number;
                }
                true
            }
            // Each entry keeps its own line; redirects and rewrite rules keep theirs too.
            "addhandler" | "removehandler" | "addtype" | "rewriterule" | "redirect"
            | "redirectmatch" | "redirectpermanent" | "redirecttemp" => true,
            _ => false,
        }
    }

    /// `deeper`'s lines over these.
    fn merge(&mut self, deeper: &Lines) {
        fn over(a: &mut usize, b: usize) {
            if b != 0 {
                *a = b;
            }
        }
        over(&mut self.require, deeper.require);
        over(&mut self.compat, deeper.compat);
        over(&mut self.deny, deeper.deny);
        over(&mut self.auth, deeper.auth);
        over(&mut self.exec_cgi, deeper.exec_cgi);
        over(&mut self.indexes, deeper.indexes);
        over(&mut self.set_handler, deeper.set_handler);
        over(&mut self.directory_index, deeper.directory_index);
    }
}

impl Rules {
    /// `self` (the shallower scope) with `deeper` laid over it.
    pub fn merge(&mut self, deeper: &Rules) {
        fn over<T: Clone>(a: &mut Option<T>, b: &Option<T>) {
            if b.is_some() {
                a.clone_from(b);
            }
        }
        over(&mut self.auth_basic, &deeper.auth_basic);
        over(&mut self.auth_name, &deeper.auth_name);
        over(&mut self.auth_user_file, &deeper.auth_user_file);
        over(&mut self.require, &deeper.require);
        over(&mut self.compat, &deeper.compat);
        over(&mut self.satisfy_any, &deeper.satisfy_any);
        over(&mut self.directory_index, &deeper.directory_index);
        self.options.merge(&deeper.options);
        for (code, doc) in &deeper.error_documents {
            self.error_documents.retain(|(c, _)| c != code);
            self.error_documents.push((*code, doc.clone()));
        }
        self.add_handler.extend(deeper.add_handler.iter().cloned());
        over(&mut self.set_handler, &deeper.set_handler);
        self.add_type.extend(deeper.add_type.iter().cloned());
        over(&mut self.force_type, &deeper.force_type);
        over(&mut self.default_type, &deeper.default_type);
        over(&mut self.default_charset, &deeper.default_charset);
        self.set_env.extend(deeper.set_env.iter().cloned());
        self.headers.extend(deeper.headers.iter().cloned());
        self.expires.merge(&deeper.expires);
        if deeper.index_ignore_reset {
            self.index_ignore.clear();
        }
        self.index_ignore
            .extend(deeper.index_ignore.iter().cloned());
        self.lines.merge(&deeper.lines);
    }

    /// The handler for a file named `name`: `SetHandler`, else the last `AddHandler` whose
    /// extension the name has (Apache looks at every extension: `a.cgi.bak` has `.cgi`).
    pub fn handler_for(&self, name: &str) -> Option<&Handler> {
        if let Some(h) = &self.set_handler {
            return Some(h);
        }
        self.added_handler(name).map(|(h, _)| h)
    }

    /// The last `AddHandler` (or `RemoveHandler`) of this scope that covers a file named
    /// `name`, with its line.
    pub fn added_handler(&self, name: &str) -> Option<(&Handler, usize)> {
        let lower = name.to_ascii_lowercase();
        let exts = extensions(&lower);
        self.add_handler
            .iter()
            .rev()
            .find(|(ext, _, _)| exts.iter().any(|e| e == ext))
            .map(|(_, h, line)| (h, *line))
    }

    /// The media type `.htaccess` gives a file named `name`: `ForceType`, else the last
    /// `AddType` of one of its extensions.
    pub fn type_for(&self, name: &str) -> Option<&str> {
        if let Some(Some(t)) = &self.force_type {
            return Some(t);
        }
        let lower = name.to_ascii_lowercase();
        let exts = extensions(&lower);
        self.add_type
            .iter()
            .rev()
            .find(|(ext, _)| exts.iter().any(|e| e == ext))
            .map(|(_, t)| t.as_str())
    }
}

/// Every extension of a name, each with its dot: `a.tar.gz` → `.tar`, `.gz` (a leading dot
/// starts no extension: `.htaccess` has none).
fn extensions(name: &str) -> Vec<&str> {
    let body = name.trim_start_matches('.');
    let start = name.len() - body.len();
    body.match_indices('.')
        .map(|(i, _)| {
            let from = start + i;
            let to = name[from + 1..]
                .find('.')
                .map_or(name.len(), |j| from + 1 + j);
            &name[from..to]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_extension_counts() {
        assert_eq!(extensions("a.tar.gz"), vec![".tar", ".gz"]);
        assert_eq!(extensions(".htaccess"), Vec::<&str>::new());
        assert_eq!(extensions("x.cgi.bak"), vec![".cgi", ".bak"]);
        let mut r = Rules::default();
        r.add_handler.push((".pl".into(), Handler::Cgi, 1));
        assert_eq!(r.handler_for("board.PL"), Some(&Handler::Cgi));
        assert_eq!(r.handler_for("board.txt"), None);
    }

    #[test]
    fn deeper_settings_win_and_lists_add_up() {
        let mut top = Rules {
            directory_index: Some(vec!["index.html".into()]),
            add_type: vec![(".x".into(), "text/x".into())],
            ..Rules::default()
        };
        let deeper = Rules {
            directory_index: Some(vec!["index.php".into()]),
            add_type: vec![(".y".into(), "text/y".into())],
            ..Rules::default()
        };
        top.merge(&deeper);
        assert_eq!(top.directory_index, Some(vec!["index.php".to_string()]));
        assert_eq!(top.type_for("a.x"), Some("text/x"));
        assert_eq!(top.type_for("a.y"), Some("text/y"));
    }
}
