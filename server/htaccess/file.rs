//! Pure: one `.htaccess` file's text → its compiled settings ([`Htaccess`]), or the first
//! line that cannot be used ([`Fault`]).
//!
//! Each directive goes to its family (access, authentication, content, headers, rewrites)
//! after two checks: the family must be one the server lets sites use (`allow_override`,
//! Apache's `AllowOverride` groups), and the directive must be one this server implements.
//! Sections: `<Files>`/`<FilesMatch>` scope settings to file names, `<Limit>`/`<LimitExcept>`
//! scope access rules to methods, `<RequireAll>`/`<RequireAny>`/`<RequireNone>` combine
//! requirements, and `<IfModule>` is taken when this server implements the module's feature.
//! `php_value`/`php_flag` are the one family skipped, with a warning naming `.user.ini`.

use super::Problem;
use super::access::{Compat, Require};
use super::indexes::Texts;
use super::redirect::Redirects;
use super::rewrite::Rewrites;
use super::rules::Rules;
use super::syntax::{self, Line, Node};

/// The directive groups a site may use (Apache's `AllowOverride`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    AuthConfig,
    FileInfo,
    Indexes,
    Limit,
    Options,
}

impl Group {
    /// Every group, as the config names them.
    pub const ALL: [(&'static str, Group); 5] = [
        ("AuthConfig", Group::AuthConfig),
        ("FileInfo", Group::FileInfo),
        ("Indexes", Group::Indexes),
        ("Limit", Group::Limit),
        ("Options", Group::Options),
    ];

    fn name(self) -> &'static str {
        Group::ALL
            .iter()
            .find(|(_, g)| *g == self)
            .map_or("?", |(n, _)| n)
    }
}

/// How files are compiled: what the server lets sites use.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The groups allowed.
    pub allowed: Vec<Group>,
    /// Whether the server has a `.php` handler (PHP handler names then mean it).
    pub php: bool,
}

/// A compiled `.htaccess`.
#[derive(Clone, Debug, Default)]
pub struct Htaccess {
    /// What it says outside any section.
    pub rules: Rules,
    /// `<Files>`/`<FilesMatch>` sections, in order.
    pub files: Vec<(FileMatch, Rules)>,
    /// `<Limit>`/`<LimitExcept>` sections: (methods, except?, access rules).
    pub limits: Vec<(Vec<String>, bool, Rules)>,
    /// mod_rewrite's directives.
    pub rewrites: Rewrites,
    /// mod_alias's redirects.
    pub redirects: Redirects,
    /// `HeaderName`/`ReadmeName`: files shown with this directory's listings.
    pub texts: Texts,
    /// Lines skipped with a warning (`php_value`), to be logged.
    pub warnings: Vec<String>,
    /// The text of the lines the scopes' [`super::rules::Lines`] point at, by line number,
    /// so that a message can quote the line that decided.
    pub said: Vec<(usize, String)>,
}

impl Htaccess {
    /// The text of line `number`, when it is one the rules point at.
    pub fn line_text(&self, number: usize) -> Option<&str> {
        self.said
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, t)| t.as_str())
    }
}

/// The first unusable line of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub line: usize,
    /// The directive (or section) as written.
    pub directive: String,
    pub problem: Problem,
}

/// Which file names a `<Files>` section covers.
#[derive(Clone, Debug)]
pub enum FileMatch {
    /// A wildcard pattern (`*.txt`, `secret?.db`), matched against the whole name.
    Glob(String),
    /// A regular expression (`<FilesMatch>`, `<Files ~>`), searched in the name.
    Regex(regex::Regex),
}

impl FileMatch {
    /// Whether the file named `name` is covered.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            FileMatch::Glob(g) => glob(g.as_bytes(), name.as_bytes()),
            FileMatch::Regex(r) => r.is_match(name),
        }
    }
}

/// Modules whose features this server implements, as `<IfModule>` names them.
const MODULES: &[&str] = &[
    "access_compat",
    "alias",
    "auth_basic",
    "authn_core",
    "authn_file",
    "authz_core",
    "authz_host",
    "authz_user",
    "autoindex",
    "cgi",
    "cgid",
    "dir",
    "env",
    "expires",
    "headers",
    "mime",
    "rewrite",
];

/// Compiles `text`.
pub fn compile(text: &str, settings: &Settings) -> Result<Htaccess, Fault> {
    let nodes = syntax::parse(text).map_err(|e| Fault {
        line: e.line,
        directive: String::new(),
        problem: Problem::new(
            e.problem,
            "correct the line (Apache's syntax: one directive per line)",
        ),
    })?;
    let mut out = Htaccess::default();
    let mut c = Compiler {
        settings,
        warnings: &mut out.warnings,
        said: &mut out.said,
        rewrites: &mut out.rewrites,
        redirects: &mut out.redirects,
        texts: &mut out.texts,
    };
    let mut rules = Rules::default();
    c.scope(
        &nodes,
        &mut rules,
        Scope::Top,
        &mut out.files,
        &mut out.limits,
    )?;
    out.rewrites.finish().map_err(|(line, problem)| Fault {
        line,
        directive: "RewriteCond".into(),
        problem,
    })?;
    out.rules = rules;
    Ok(out)
}

/// Where a list of nodes sits, which limits what may appear.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Top,
    Files,
    Limit,
}

struct Compiler<'a> {
    settings: &'a Settings,
    warnings: &'a mut Vec<String>,
    said: &'a mut Vec<(usize, String)>,
    rewrites: &'a mut Rewrites,
    redirects: &'a mut Redirects,
    texts: &'a mut Texts,
}

impl Compiler<'_> {
    /// Compiles `nodes` into `rules` (sections at the top level go to `files`/`limits`).
    fn scope(
        &mut self,
        nodes: &[Node],
        rules: &mut Rules,
        scope: Scope,
        files: &mut Vec<(FileMatch, Rules)>,
        limits: &mut Vec<(Vec<String>, bool, Rules)>,
    ) -> Result<(), Fault> {
        let mut requires = Vec::new();
        for node in nodes {
            match node {
                Node::Directive(line) => self.directive(line, rules, scope, &mut requires)?,
                Node::Section { open, body } => {
                    let name = open.name.to_ascii_lowercase();
                    match name.as_str() {
                        "ifmodule" => {
                            if module_present(open)? {
                                self.scope(body, rules, scope, files, limits)?;
                            }
                        }
                        "files" | "filesmatch" if scope == Scope::Top => {
                            let m = file_match(open)?;
                            let mut r = Rules::default();
                            self.scope(body, &mut r, Scope::Files, files, limits)?;
                            files.push((m, r));
                        }
                        "limit" | "limitexcept" if scope != Scope::Limit => {
                            let methods: Vec<String> =
                                open.args.iter().map(|m| m.to_ascii_uppercase()).collect();
                            if methods.is_empty() {
                                return Err(fault(
                                    open,
                                    "a method list is missing",
                                    "write e.g. `<Limit POST PUT>`",
                                ));
                            }
                            let mut r = Rules::default();
                            self.scope(body, &mut r, Scope::Limit, files, limits)?;
                            limits.push((methods, name == "limitexcept", r));
                        }
                        "requireall" | "requireany" | "requirenone" => {
                            self.allowed(open, super::file::Group::AuthConfig)?;
                            requires.push(container(open, body)?);
                            if rules.lines.require == 0 {
                                rules.lines.require = open.number;
                                self.said.push((open.number, format!("<{}>", open.name)));
                            }
                        }
                        _ => {
                            return Err(fault(
                                open,
                                &format!(
                                    "the section <{}> is not one a .htaccess may use here",
                                    open.name
                                ),
                                "use <Files>, <FilesMatch>, <IfModule>, <Limit>, <LimitExcept> or <RequireAll>/<RequireAny>/<RequireNone>",
                            ));
                        }
                    }
                }
            }
        }
        if !requires.is_empty() {
            let r = if requires.len() == 1 {
                requires.remove(0)
            } else {
                Require::Any(requires)
            };
            r.check_negation().map_err(|p| Fault {
                line: nodes.iter().find_map(first_require).unwrap_or(0),
                directive: "Require".into(),
                problem: p,
            })?;
            rules.require = Some(r);
        }
        Ok(())
    }

    /// One directive, to its family.
    fn directive(
        &mut self,
        line: &Line,
        rules: &mut Rules,
        scope: Scope,
        requires: &mut Vec<Require>,
    ) -> Result<(), Fault> {
        let name = line.name.to_ascii_lowercase();
        if name.starts_with("php_") || name.starts_with("php_admin_") {
            self.warnings.push(format!(
                "line {}: `{}` is ignored: PHP runs as CGI here, so PHP settings go in a .user.ini file beside the script (e.g. `{} = ...`)",
                line.number,
                line.name,
                line.args.first().map_or("setting", String::as_str)
            ));
            return Ok(());
        }
        let Some(group) = group_of(&name) else {
            return Err(fault(
                line,
                &format!(
                    "`{}` is not a directive this server implements (or not one a .htaccess may use)",
                    line.name
                ),
                "remove the line, or ask the host what replaces it; an ignored line could expose what it was meant to protect, so the whole directory is refused until then",
            ));
        };
        self.allowed(line, group)?;
        let access_only = matches!(group, Group::AuthConfig | Group::Limit);
        if scope == Scope::Limit && !access_only {
            return Err(fault(
                line,
                "only access directives may be inside <Limit>",
                "move it out of the <Limit> section",
            ));
        }
        let moves_url = Rewrites::handles(&name) || Redirects::handles(&name);
        if scope != Scope::Top && moves_url {
            return Err(fault(
                line,
                "rewrites and redirects act on the URL, not on one file's name",
                "move it out of the section, and match the name in the rule's pattern instead",
            ));
        }
        let before = rules.options;
        let done = match name.as_str() {
            n if Rewrites::handles(n) => self.rewrites.directive(line),
            n if Redirects::handles(n) => self.redirects.directive(line),
            "require" => Require::line(line).map(|r| requires.push(r)),
            "order" | "allow" | "deny" => {
                rules.compat.get_or_insert_with(Compat::default).line(line)
            }
            "satisfy" => satisfy(rules, line),
            "authtype" | "authname" | "authuserfile" | "authbasicprovider" => auth(rules, line),
            n if super::content::NAMES.contains(&n) => {
                super::content::apply(rules, line, self.settings.php)
            }
            n if super::headers::NAMES.contains(&n) => super::headers::apply(rules, line),
            n if super::indexes::NAMES.contains(&n) => super::indexes::apply(rules, line),
            n if super::indexes::TEXT_NAMES.contains(&n) => match scope {
                Scope::Top => super::indexes::text(self.texts, line),
                _ => Err(Problem::new(
                    format!(
                        "`{}` names a file for the directory's listing, not for some files",
                        line.name
                    ),
                    "move it out of the section",
                )),
            },
            _ => Err(Problem::new(
                format!("`{}` is not implemented yet", line.name),
                "remove the line until this server supports it",
            )),
        };
        done.map_err(|problem| Fault {
            line: line.number,
            directive: line.name.clone(),
            problem,
        })?;
        if rules.lines.note(line, &before, &rules.options) {
            self.said.push((line.number, line.text()));
        }
        Ok(())
    }

    fn allowed(&self, line: &Line, group: Group) -> Result<(), Fault> {
        if self.settings.allowed.contains(&group) {
            return Ok(());
        }
        Err(fault(
            line,
            &format!(
                "`{}` belongs to the {} group, which this server does not let sites use (allow_override)",
                line.name,
                group.name()
            ),
            "remove the line, or ask the host to allow that group",
        ))
    }
}

fn fault(line: &Line, problem: &str, fix: &str) -> Fault {
    Fault {
        line: line.number,
        directive: line.name.clone(),
        problem: Problem::new(problem, fix),
    }
}

fn first_require(node: &Node) -> Option<usize> {
    match node {
        Node::Directive(l) if l.name.eq_ignore_ascii_case("require") => Some(l.number),
        Node::Section { open, .. } if open.name.to_ascii_lowercase().starts_with("require") => {
            Some(open.number)
        }
        _ => None,
    }
}

/// The group a directive belongs to, or `None` for one this server does not implement.
fn group_of(name: &str) -> Option<Group> {
    Some(match name {
        "require" | "satisfy" | "authtype" | "authname" | "authuserfile" | "authbasicprovider" => {
            Group::AuthConfig
        }
        "order" | "allow" | "deny" => Group::Limit,
        "directoryindex" | "expiresactive" | "expiresbytype" | "expiresdefault" => Group::Indexes,
        n if super::indexes::NAMES.contains(&n) || super::indexes::TEXT_NAMES.contains(&n) => {
            Group::Indexes
        }
        "options" => Group::Options,
        n if super::content::NAMES.contains(&n)
            || super::headers::NAMES.contains(&n)
            || Rewrites::handles(n)
            || Redirects::handles(n) =>
        {
            Group::FileInfo
        }
        _ => return None,
    })
}

/// A `<RequireAll>`/`<RequireAny>`/`<RequireNone>` and what is in it.
fn container(open: &Line, body: &[Node]) -> Result<Require, Fault> {
    let mut inner = Vec::new();
    for node in body {
        match node {
            Node::Directive(l) if l.name.eq_ignore_ascii_case("require") => {
                inner.push(Require::line(l).map_err(|p| Fault {
                    line: l.number,
                    directive: l.name.clone(),
                    problem: p,
                })?);
            }
            Node::Section { open: o, body: b }
                if o.name.to_ascii_lowercase().starts_with("require") =>
            {
                inner.push(container(o, b)?);
            }
            Node::Directive(l) | Node::Section { open: l, .. } => {
                return Err(fault(
                    l,
                    &format!("only Require may be inside <{}>", open.name),
                    "move it out",
                ));
            }
        }
    }
    if inner.is_empty() {
        return Err(fault(
            open,
            "the section is empty",
            "put Require lines in it, or remove it",
        ));
    }
    Ok(match open.name.to_ascii_lowercase().as_str() {
        "requireall" => Require::Every(inner),
        "requireany" => Require::Any(inner),
        _ => Require::Every(
            inner
                .into_iter()
                .map(|r| Require::Not(Box::new(r)))
                .collect(),
        ),
    })
}

fn satisfy(rules: &mut Rules, line: &Line) -> Result<(), Problem> {
    rules.satisfy_any = Some(
        match line.args.first().map(|a| a.to_ascii_lowercase()).as_deref() {
            Some("any") if line.args.len() == 1 => true,
            Some("all") if line.args.len() == 1 => false,
            _ => {
                return Err(Problem::new(
                    "`Satisfy` takes Any or All",
                    "write `Satisfy Any` or `Satisfy All`",
                ));
            }
        },
    );
    Ok(())
}

fn auth(rules: &mut Rules, line: &Line) -> Result<(), Problem> {
    let [value] = &line.args[..] else {
        return Err(Problem::new(
            format!("`{}` takes one value", line.name),
            "quote a value with spaces",
        ));
    };
    match line.name.to_ascii_lowercase().as_str() {
        "authtype" => match value.to_ascii_lowercase().as_str() {
            "basic" => rules.auth_basic = Some(true),
            "none" => rules.auth_basic = Some(false),
            _ => {
                return Err(Problem::new(
                    format!("`AuthType {value}` is not supported; only Basic is"),
                    "use `AuthType Basic` with an `AuthUserFile` made by htpasswd (HTTPS keeps the password safe on the way)",
                ));
            }
        },
        "authname" => rules.auth_name = Some(value.clone()),
        "authuserfile" => rules.auth_user_file = Some(value.clone()),
        _ if value.eq_ignore_ascii_case("file") => {}
        _ => {
            return Err(Problem::new(
                format!("`AuthBasicProvider {value}` is not supported; only `file` is"),
                "use `AuthBasicProvider file` (the default) with an `AuthUserFile`",
            ));
        }
    }
    Ok(())
}

/// `<IfModule mod_rewrite.c>`, `<IfModule rewrite_module>`, `<IfModule !mod_x.c>`.
fn module_present(open: &Line) -> Result<bool, Fault> {
    let [arg] = &open.args[..] else {
        return Err(fault(
            open,
            "<IfModule> takes one module name",
            "write e.g. `<IfModule mod_rewrite.c>`",
        ));
    };
    let (negated, name) = match arg.strip_prefix('!') {
        Some(n) => (true, n),
        None => (false, arg.as_str()),
    };
    let n = name.to_ascii_lowercase();
    let bare = n
        .strip_prefix("mod_")
        .map(|m| m.trim_end_matches(".c"))
        .or_else(|| n.strip_suffix("_module"))
        .unwrap_or(&n);
    Ok(MODULES.contains(&bare) != negated)
}

/// The name pattern of `<Files>` / `<Files ~>` / `<FilesMatch>`.
fn file_match(open: &Line) -> Result<FileMatch, Fault> {
    let regex = |text: &str| {
        regex::Regex::new(text).map(FileMatch::Regex).map_err(|e| {
            fault(
                open,
                &format!("`{text}` is not a regular expression this server can use ({e})"),
                "simplify it (backreferences and lookaround are not supported)",
            )
        })
    };
    match (open.name.to_ascii_lowercase().as_str(), &open.args[..]) {
        ("filesmatch", [re]) => regex(re),
        ("files", [tilde, re]) if tilde == "~" => regex(re),
        ("files", [glob]) => Ok(FileMatch::Glob(glob.clone())),
        _ => Err(fault(
            open,
            "the section takes one name pattern",
            "write e.g. `<Files \"secret.txt\">` or `<FilesMatch \"\\.(bak|sql)$\">`",
        )),
    }
}

/// Shell-style wildcard match of a whole name: `*`, `?`, `[abc]`/`[a-z]`/`[!a]`.
pub(super) fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| glob(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && glob(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some(close) = rest.iter().skip(1).position(|&b| b == b']').map(|p| p + 1) else {
                return name.first() == Some(&b'[') && glob(rest, &name[1..]);
            };
            let (set, after) = (&rest[..close], &rest[close + 1..]);
            let (negated, set) = match set.split_first() {
                Some((b'!' | b'^', s)) => (true, s),
                _ => (false, set),
            };
            let Some(&c) = name.first() else { return false };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= (set[i]..=set[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negated && glob(after, &name[1..])
        }
        Some((p, rest)) => name.first() == Some(p) && glob(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests;
