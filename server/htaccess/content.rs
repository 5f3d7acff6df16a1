//! Pure: the directives that say how a directory's files are served: `Options`,
//! `DirectoryIndex`, `ErrorDocument`, `AddHandler`/`SetHandler`, `AddType`/`ForceType`/
//! `DefaultType`, `AddDefaultCharset`, `SetEnv`, `ServerSignature`.
//!
//! Handlers: `cgi-script` runs a file as a CGI script (still judged by the permission gate),
//! `default-handler` serves it as it is, and the PHP handler names rental servers use
//! (`application/x-httpd-php`, `php-script`, ...) mean the server's own `.php` handler
//! (`[cgi] handlers`), so `AddHandler application/x-httpd-php .html` works as it does on
//! hosts that run PHP as CGI.

use super::Problem;
use super::rules::Rules;
use super::syntax::Line;

/// What a file is handed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handler {
    /// `cgi-script`: run it.
    Cgi,
    /// `default-handler`: serve it as a file.
    Static,
    /// The interpreter the server configures for this extension (`.php`).
    Interpreter(String),
}

/// `Options`: each `None` is inherited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub indexes: Option<bool>,
    pub exec_cgi: Option<bool>,
    pub follow_symlinks: Option<bool>,
    /// `SymLinksIfOwnerMatch`: a link is followed when it and its target have one owner.
    pub owner_match: Option<bool>,
}

impl Options {
    /// `deeper` over `self`.
    pub fn merge(&mut self, deeper: &Options) {
        self.indexes = deeper.indexes.or(self.indexes);
        self.exec_cgi = deeper.exec_cgi.or(self.exec_cgi);
        self.follow_symlinks = deeper.follow_symlinks.or(self.follow_symlinks);
        self.owner_match = deeper.owner_match.or(self.owner_match);
    }
}

/// What `ErrorDocument` sends instead of the server's page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorDocument {
    /// A local URL path, served (status kept) in place of the error.
    Local(String),
    /// A full URL: the client is redirected there (302), as Apache does.
    Remote(String),
    /// The text itself.
    Text(String),
}

/// The directive names this family takes (lowercase).
pub const NAMES: &[&str] = &[
    "options",
    "directoryindex",
    "errordocument",
    "addhandler",
    "sethandler",
    "removehandler",
    "addtype",
    "forcetype",
    "defaulttype",
    "adddefaultcharset",
    "setenv",
    "unsetenv",
    "serversignature",
];

/// Applies one line of this family to `rules`; `php` says whether the server has a `.php`
/// handler the PHP handler names can mean.
pub fn apply(rules: &mut Rules, line: &Line, php: bool) -> Result<(), Problem> {
    let args = &line.args;
    match line.name.to_ascii_lowercase().as_str() {
        "options" => options(&mut rules.options, args),
        "directoryindex" => {
            rules.directory_index = Some(directory_index(args)?);
            Ok(())
        }
        "errordocument" => error_document(rules, args),
        "addhandler" => {
            let (name, exts) = split_first(line, "a handler and extensions")?;
            let h = handler(name, php)?;
            for e in exts {
                rules
                    .add_handler
                    .push((extension(e), h.clone(), line.number));
            }
            Ok(())
        }
        "sethandler" => {
            let [name] = &args[..] else {
                return Err(count(line, "one handler"));
            };
            rules.set_handler = if name.eq_ignore_ascii_case("none") {
                Some(Handler::Static)
            } else {
                Some(handler(name, php)?)
            };
            Ok(())
        }
        "removehandler" => {
            for e in args {
                let e = extension(e);
                rules.add_handler.retain(|(x, _, _)| *x != e);
                rules.add_handler.push((e, Handler::Static, line.number));
            }
            Ok(())
        }
        "addtype" => {
            let (mime, exts) = split_first(line, "a media type and extensions")?;
            let as_handler = php_name(mime).then(|| handler(mime, php)).transpose()?;
            for e in exts {
                match &as_handler {
                    // Old hosts turned PHP on with AddType; it is a handler here.
                    Some(h) => rules
                        .add_handler
                        .push((extension(e), h.clone(), line.number)),
                    None => rules.add_type.push((extension(e), mime.clone())),
                }
            }
            Ok(())
        }
        "forcetype" => {
            let [mime] = &args[..] else {
                return Err(count(line, "one media type"));
            };
            rules.force_type = Some((!mime.eq_ignore_ascii_case("none")).then(|| mime.clone()));
            Ok(())
        }
        "defaulttype" => {
            let [mime] = &args[..] else {
                return Err(count(line, "one media type"));
            };
            rules.default_type = Some(mime.clone());
            Ok(())
        }
        "adddefaultcharset" => {
            let [v] = &args[..] else {
                return Err(count(line, "On, Off or a charset"));
            };
            rules.default_charset = Some(match v.to_ascii_lowercase().as_str() {
                "off" => None,
                "on" => Some("iso-8859-1".into()),
                _ => Some(v.clone()),
            });
            Ok(())
        }
        "setenv" => match &args[..] {
            [name] => {
                rules.set_env.push((name.clone(), String::new()));
                Ok(())
            }
            [name, value] => {
                rules.set_env.push((name.clone(), value.clone()));
                Ok(())
            }
            _ => Err(count(line, "a variable and a value")),
        },
        "unsetenv" => {
            rules.set_env.retain(|(n, _)| !args.contains(n));
            Ok(())
        }
        // The server's pages name no version or host: every setting is already met.
        "serversignature" => match args.first().map(|a| a.to_ascii_lowercase()) {
            Some(v) if ["on", "off", "email"].contains(&v.as_str()) && args.len() == 1 => Ok(()),
            _ => Err(count(line, "On, Off or EMail")),
        },
        _ => Err(Problem::new(
            format!("`{}` is not a content directive", line.name),
            "remove it",
        )),
    }
}

fn count(line: &Line, wants: &str) -> Problem {
    Problem::new(
        format!("`{}` takes {wants}", line.name),
        format!("write it as `{} <{wants}>`", line.name),
    )
}

fn split_first<'a>(line: &'a Line, wants: &str) -> Result<(&'a String, &'a [String]), Problem> {
    match line.args.split_first() {
        Some((first, rest)) if !rest.is_empty() => Ok((first, rest)),
        _ => Err(count(line, wants)),
    }
}

/// `.PL` and `pl` are both `.pl`.
fn extension(e: &str) -> String {
    format!(".{}", e.trim_start_matches('.').to_ascii_lowercase())
}

/// A PHP handler name as rental hosts spell it.
fn php_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("application/x-httpd-php")
        || n.starts_with("x-httpd-php")
        || n.starts_with("php")
            && (n.ends_with("-script") || n.contains("fcgi") || n.contains("cgi"))
}

fn handler(name: &str, php: bool) -> Result<Handler, Problem> {
    match name.to_ascii_lowercase().as_str() {
        "cgi-script" => Ok(Handler::Cgi),
        "default-handler" => Ok(Handler::Static),
        _ if php_name(name) && php => Ok(Handler::Interpreter(".php".into())),
        _ if php_name(name) => Err(Problem::new(
            format!("`{name}` asks for PHP, and this server has no PHP handler configured"),
            "ask the host to configure one (`[cgi] handlers`), or remove the line",
        )),
        _ => Err(Problem::new(
            format!("`{name}` is not a handler this server has"),
            "use `cgi-script` (run as a CGI script), `default-handler` (serve as a file) or a PHP handler name",
        )),
    }
}

/// `Options [+|-]Name ...`: names without a sign set the whole set (others off).
fn options(o: &mut Options, args: &[String]) -> Result<(), Problem> {
    let absolute = args.iter().any(|a| !a.starts_with(['+', '-']));
    if absolute {
        *o = Options {
            indexes: Some(false),
            exec_cgi: Some(false),
            follow_symlinks: Some(false),
            owner_match: Some(false),
        };
    }
    for a in args {
        let (on, name) = match a.as_bytes().first() {
            Some(b'+') => (true, &a[1..]),
            Some(b'-') => (false, &a[1..]),
            _ => (true, a.as_str()),
        };
        match name.to_ascii_lowercase().as_str() {
            "indexes" => o.indexes = Some(on),
            "execcgi" => o.exec_cgi = Some(on),
            "followsymlinks" => o.follow_symlinks = Some(on),
            "symlinksifownermatch" => o.owner_match = Some(on),
            "all" => {
                o.indexes = Some(on);
                o.exec_cgi = Some(on);
                o.follow_symlinks = Some(on);
            }
            "none" => {
                *o = Options {
                    indexes: Some(false),
                    exec_cgi: Some(false),
                    follow_symlinks: Some(false),
                    owner_match: Some(false),
                }
            }
            // Turning off what this server never does is already true.
            "multiviews" | "includes" | "includesnoexec" if !on => {}
            other => {
                return Err(Problem::new(
                    format!("`Options {a}`: {other} is not an option this server has"),
                    "use Indexes, ExecCGI, FollowSymLinks or SymLinksIfOwnerMatch (MultiViews and Includes may only be turned off)",
                ));
            }
        }
    }
    Ok(())
}

fn directory_index(args: &[String]) -> Result<Vec<String>, Problem> {
    if args.len() == 1 && args[0].eq_ignore_ascii_case("disabled") {
        return Ok(Vec::new());
    }
    if args.is_empty() || args.iter().any(|a| a.contains('/') && !a.starts_with('/')) {
        return Err(Problem::new(
            "`DirectoryIndex` takes file names (or `disabled`)",
            "write e.g. `DirectoryIndex index.php index.html`",
        ));
    }
    Ok(args.to_vec())
}

fn error_document(rules: &mut Rules, args: &[String]) -> Result<(), Problem> {
    let bad = || {
        Problem::new(
            "`ErrorDocument` takes a status (400-599) and a local path, a URL or a quoted text",
            "write e.g. `ErrorDocument 404 /404.html`",
        )
    };
    let [code, target] = args else {
        return Err(bad());
    };
    let code: u16 = code
        .parse()
        .ok()
        .filter(|c| (400..600).contains(c))
        .ok_or_else(bad)?;
    rules.error_documents.retain(|(c, _)| *c != code);
    if target == "default" {
        return Ok(());
    }
    let doc = if target.starts_with('/') {
        ErrorDocument::Local(target.clone())
    } else if target.starts_with("http://") || target.starts_with("https://") {
        ErrorDocument::Remote(target.clone())
    } else {
        ErrorDocument::Text(target.clone())
    };
    rules.error_documents.push((code, doc));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::syntax::line;

    fn apply_all(lines: &[&str]) -> Result<Rules, Problem> {
        let mut r = Rules::default();
        for l in lines {
            apply(&mut r, &line(l), true)?;
        }
        Ok(r)
    }

    #[test]
    fn content_directives() {
        let r = apply_all(&[
            "Options -Indexes +ExecCGI",
            "DirectoryIndex index.php index.html",
            "ErrorDocument 404 /404.html",
            "ErrorDocument 403 \"Go away\"",
            "AddHandler cgi-script .pl .py",
            "AddType application/x-httpd-php .html",
            "AddType text/x-foo foo",
            "AddDefaultCharset UTF-8",
            "Options -MultiViews",
        ])
        .expect("valid");
        assert_eq!(r.options.indexes, Some(false));
        assert_eq!(r.options.exec_cgi, Some(true));
        assert_eq!(
            r.directory_index,
            Some(vec!["index.php".into(), "index.html".into()])
        );
        assert_eq!(r.handler_for("board.pl"), Some(&Handler::Cgi));
        assert_eq!(
            r.handler_for("page.html"),
            Some(&Handler::Interpreter(".php".into()))
        );
        assert_eq!(r.type_for("a.foo"), Some("text/x-foo"));
        assert_eq!(r.error_documents.len(), 2);
        assert_eq!(r.default_charset, Some(Some("UTF-8".into())));
        let abs = apply_all(&["Options Indexes"]).expect("valid").options;
        assert_eq!((abs.indexes, abs.exec_cgi), (Some(true), Some(false)));
    }

    #[test]
    fn what_is_not_here_is_a_problem() {
        for l in [
            "Options +MultiViews",
            "Options +Includes",
            "AddHandler server-status .x",
            "ErrorDocument 200 /x",
            "SetHandler",
            "DirectoryIndex a/b",
        ] {
            assert!(apply_all(&[l]).is_err(), "{l}");
        }
    }
}
