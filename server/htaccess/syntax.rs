//! Pure: the text of a `.htaccess` file → directives and sections, as Apache's config reader
//! splits it (`ap_cfg_getline` and `ap_getword_conf`): one directive per line, a backslash at
//! the end of a line continues it, `#` starts a comment only at the start of a line, arguments
//! are words or quoted strings (double or single quotes, with `\` escaping the quote), and
//! `<Name args>` … `</Name>` make a section. What a directive means is decided elsewhere; a
//! file that does not even split is an error naming its line.

/// One directive or section opening, with its line number (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Where it starts in the file.
    pub number: usize,
    /// The directive's name as written (Apache matches names without regard to case).
    pub name: String,
    /// Its arguments, unquoted.
    pub args: Vec<String>,
}

impl Line {
    /// The line as it could be written again: its name and arguments, those with spaces or
    /// quotes quoted (for messages that quote the line that decided).
    pub fn text(&self) -> String {
        let mut out = self.name.clone();
        for a in &self.args {
            out.push(' ');
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"') {
                out.push('"');
                out.push_str(&a.replace('"', "\\\""));
                out.push('"');
            } else {
                out.push_str(a);
            }
        }
        out
    }
}

/// A directive, or a section holding more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Directive(Line),
    Section { open: Line, body: Vec<Node> },
}

/// Why a file does not split, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub problem: String,
}

/// Longest file read; Apache has no limit, but a `.htaccess` is read on the request path.
pub const MAX_BYTES: usize = 256 * 1024;

/// Splits `text` into directives and sections.
pub fn parse(text: &str) -> Result<Vec<Node>, SyntaxError> {
    // Sections open so far: (the opening line, what is in it so far).
    let mut stack: Vec<(Line, Vec<Node>)> = Vec::new();
    let mut top: Vec<Node> = Vec::new();
    for (number, logical) in logical_lines(text) {
        let trimmed = logical.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("</") {
            let name = section_name(rest, number)?;
            let Some((open, body)) = stack.pop() else {
                return Err(err(
                    number,
                    format!("`</{name}>` closes a section that was never opened"),
                ));
            };
            if !open.name.eq_ignore_ascii_case(&name) {
                return Err(err(
                    number,
                    format!(
                        "`</{name}>` closes `<{}>` (opened on line {})",
                        open.name, open.number
                    ),
                ));
            }
            let node = Node::Section { open, body };
            match stack.last_mut() {
                Some((_, body)) => body.push(node),
                None => top.push(node),
            }
        } else if let Some(rest) = trimmed.strip_prefix('<') {
            let inner = rest
                .strip_suffix('>')
                .ok_or_else(|| err(number, format!("`<{rest}` has no closing `>`")))?;
            let (name, args) = split_name(inner, number)?;
            stack.push((Line { number, name, args }, Vec::new()));
        } else {
            let (name, args) = split_name(trimmed, number)?;
            let node = Node::Directive(Line { number, name, args });
            match stack.last_mut() {
                Some((_, body)) => body.push(node),
                None => top.push(node),
            }
        }
    }
    match stack.pop() {
        Some((open, _)) => Err(err(
            open.number,
            format!("`<{}>` is never closed with `</{}>`", open.name, open.name),
        )),
        None => Ok(top),
    }
}

fn err(line: usize, problem: String) -> SyntaxError {
    SyntaxError { line, problem }
}

/// The lines of `text`, joined where a line ends in a backslash, each with the number of its
/// first physical line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let (number, mut line) = pending.take().unwrap_or((i + 1, String::new()));
        match raw.strip_suffix('\\') {
            Some(cont) => {
                line.push_str(cont);
                line.push(' ');
                pending = Some((number, line));
            }
            None => {
                line.push_str(raw);
                out.push((number, line));
            }
        }
    }
    out.extend(pending);
    out
}

/// `Name args...` → the name and the words.
fn split_name(text: &str, number: usize) -> Result<(String, Vec<String>), SyntaxError> {
    let mut words = words(text).map_err(|p| err(number, p))?.into_iter();
    let name = words.next().unwrap_or_default();
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !plain {
        return Err(err(number, format!("`{name}` is not a directive name")));
    }
    Ok((name, words.collect()))
}

/// The name in `Name>` of a closing tag.
fn section_name(rest: &str, number: usize) -> Result<String, SyntaxError> {
    rest.strip_suffix('>')
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace))
        .ok_or_else(|| {
            err(
                number,
                format!("`</{rest}` is not a closing tag like `</Files>`"),
            )
        })
}

/// One directive line as written (`Name args...`), for tests.
#[cfg(test)]
pub fn line(text: &str) -> Line {
    let words = words(text).expect("words");
    Line {
        number: 1,
        name: words[0].clone(),
        args: words[1..].to_vec(),
    }
}

/// The words of a line: runs of non-space, or quoted strings (`"..."` or `'...'`) in which a
/// backslash before the quote keeps it.
pub fn words(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else {
            return Ok(out);
        };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' if chars.next_if_eq(&first).is_some() => word.push(first),
                    c if c == first => {
                        closed = true;
                        break;
                    }
                    c => word.push(c),
                }
            }
            if !closed {
                return Err(format!("a quoted argument ({first}{word}) is never closed"));
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                word.push(c);
            }
        }
        out.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(number: usize, name: &str, args: &[&str]) -> Line {
        Line {
            number,
            name: name.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn directives_sections_quotes_and_continuations() {
        let text = "# comment\n  RewriteEngine On\r\nAuthName \"Members only\"\n\
                    <Files \"secret.txt\">\n  Require all denied\n</files>\n\
                    Header set X-A 'one \\' two'\nRewriteRule ^a$ \\\n  /b [L]\n";
        let nodes = parse(text).expect("parses");
        assert_eq!(
            nodes,
            vec![
                Node::Directive(line(2, "RewriteEngine", &["On"])),
                Node::Directive(line(3, "AuthName", &["Members only"])),
                Node::Section {
                    open: line(4, "Files", &["secret.txt"]),
                    body: vec![Node::Directive(line(5, "Require", &["all", "denied"]))],
                },
                Node::Directive(line(7, "Header", &["set", "X-A", "one ' two"])),
                Node::Directive(line(8, "RewriteRule", &["^a$", "/b", "[L]"])),
            ]
        );
    }

    #[test]
    fn broken_files_name_the_line() {
        for (text, at, says) in [
            ("<Files x>\nRequire all denied\n", 1, "never closed"),
            ("</Files>\n", 1, "never opened"),
            ("<Files x>\n</FilesMatch>\n", 2, "closes `<Files>`"),
            ("AuthName \"open\n", 1, "never closed"),
            ("<Files x\n", 1, "no closing"),
            ("Require all granted\n=bad\n", 2, "not a directive name"),
        ] {
            let e = parse(text).expect_err(text);
            assert_eq!(e.line, at, "{text}");
            assert!(e.problem.contains(says), "{text}: {}", e.problem);
        }
    }
}
