//! The settings one `.htaccess` (or one `<Files>` section of it) makes, and how a deeper one
//! overrides a shallower one, as Apache merges per-directory configurations: a setting given
//! replaces the inherited one, lists (handlers, types, headers) add to it, and `Require` in a
//! deeper file replaces the shallower file's (`AuthMerging Off`, Apache's default).

use super::access::{Compat, Require};
use super::content::{ErrorDocument, Handler, Options};
use super::headers::{Expires, HeaderAction};

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
    /// `AddHandler`: extension (with its dot, lowercase) → handler.
    pub add_handler: Vec<(String, Handler)>,
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
    }

    /// The handler for a file named `name`: `SetHandler`, else the last `AddHandler` whose
    /// extension the name has (Apache looks at every extension: `a.cgi.bak` has `.cgi`).
    pub fn handler_for(&self, name: &str) -> Option<&Handler> {
        if let Some(h) = &self.set_handler {
            return Some(h);
        }
        let lower = name.to_ascii_lowercase();
        let exts = extensions(&lower);
        self.add_handler
            .iter()
            .rev()
            .find(|(ext, _)| exts.iter().any(|e| e == ext))
            .map(|(_, h)| h)
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
        r.add_handler.push((".pl".into(), Handler::Cgi));
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
