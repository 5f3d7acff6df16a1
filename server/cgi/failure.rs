//! Every way running a script can fail, each with its status and a sentence that names the
//! cause and the fix (what no anchor server does: Apache logs "End of script output before
//! headers" and leaves the user guessing).

use http::StatusCode;
use yadokari_site::denial::Explanation;

use super::head::HeadError;
use super::spawn::{ExitStatus, Step};

/// A failure to run a script or to make a response of its output. `Display` gives the reason
/// in a sentence; `source()` the I/O error behind it, when there is one.
#[derive(Debug)]
pub enum Failure {
    /// The request body is over `limits.max_request_body_bytes`.
    BodyTooLarge { limit: u64 },
    /// A chunked request body stopped coming for `secs` seconds.
    BodyTimeout { secs: u64 },
    /// The request body could not be read or spooled.
    BodyUnreadable { error: std::io::Error },
    /// Every script slot stayed busy for the whole queue wait.
    Busy { slots: usize },
    /// The customer already runs their whole share of the script slots.
    ShareBusy { share: usize },
    /// The script is owned by a uid with no account.
    NoAccount { uid: u32 },
    /// The fallback user does not exist.
    NoFallbackUser { name: String },
    /// The script would run as root.
    WouldRunAsRoot,
    /// Pipes or the process could not be created.
    Resources { error: std::io::Error },
    /// The interpreter of a handler is missing.
    HandlerMissing { interpreter: String },
    /// `#!` names an interpreter that does not exist.
    InterpreterNotFound { interpreter: String },
    /// `#!` line ends with `\r`.
    CrlfShebang { interpreter: String },
    /// A UTF-8 byte-order mark before `#!`.
    Bom,
    /// No `#!` line and not a binary the kernel can run.
    NoShebang,
    /// The account the script runs as may not execute it (or its interpreter).
    NotPermitted { user: String },
    /// The account the script runs as may not enter a directory on its path.
    DirNotEnterable {
        dir: String,
        mode: u32,
        fix_mode: u32,
        user: String,
    },
    /// The account already runs as many processes as `cgi.limit_processes` allows
    /// (RLIMIT_NPROC counts every process of the user, not only this script's).
    TooManyProcesses { user: String },
    /// Setting up the child failed at `step`.
    Setup { step: Step, error: std::io::Error },
    /// No complete header block before the output ended.
    NoHeaderBlock {
        first_bytes: String,
        exit: Option<ExitStatus>,
    },
    /// The header block is invalid.
    BadHead {
        error: HeadError,
        exit: Option<ExitStatus>,
    },
    /// A `Status:` (or nph- status line) of 1xx: informational responses are the server's to
    /// send, never a script's final answer.
    Informational { status: u16 },
    /// The script, or its directory, was replaced between the gate's check and the start.
    Changed,
    /// No header block within `cgi.header_timeout_secs`.
    HeaderTimeout { secs: u64 },
    /// More than the allowed internal redirects.
    RedirectLoop,
    /// The customer's sandbox could not be built.
    Sandbox { error: String },
    /// The customer's memory limit (cgroup) stopped the script: the kernel ended it.
    MemoryLimit { limit: u64 },
    /// The customer's process limit (cgroup) refused the script a `fork`.
    ProcessLimit { limit: u64 },
}

impl Failure {
    /// The status and the explanation, for the script at site-relative `path`.
    pub fn explain(&self, path: &str) -> (StatusCode, Explanation) {
        let (status, reason, fix) = self
            .serving(path)
            .or_else(|| self.account(path))
            .or_else(|| self.directories(path))
            .or_else(|| self.exec(path))
            .or_else(|| self.output(path))
            .unwrap_or_else(|| {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("`{path}` failed: {}.", self.code()),
                    "Check the error log.".to_string(),
                )
            });
        (status, Explanation { reason, fix })
    }

    /// The request, the server's resources and its bounds.
    fn serving(&self, path: &str) -> Option<(StatusCode, String, String)> {
        Some(match self {
            Failure::BodyTimeout { secs } => (
                StatusCode::REQUEST_TIMEOUT,
                format!("The request body stopped arriving for {secs} seconds."),
                "Send the body without long pauses (or raise limits.header_read_timeout_secs)."
                    .to_string(),
            ),
            Failure::Changed => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "`{path}` (or its directory) was replaced while the server was starting it, so what was checked is not what would run; it was not run."
                ),
                "Try again: the next request checks the new file.".to_string(),
            ),
            Failure::BodyTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("The request body is larger than the {limit} bytes this server accepts."),
                "Send a smaller body, or raise limits.max_request_body_bytes.".to_string(),
            ),
            Failure::BodyUnreadable { error } => (
                StatusCode::BAD_REQUEST,
                format!("The request body could not be read: {error}."),
                "Send the body again.".to_string(),
            ),
            Failure::Busy { slots } => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("All {slots} script slots are busy."),
                "Try again in a moment (or raise cgi.max_concurrent).".to_string(),
            ),
            Failure::ShareBusy { share } => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("This site already runs its share of scripts ({share} at once)."),
                "Try again in a moment; the site's owner can make slow scripts finish sooner (or the host can raise its max_scripts).".to_string(),
            ),
            Failure::Resources { error } => (
                if crate::descriptors::exhausted(error) {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                },
                format!("The server could not start `{path}`: {error}."),
                "Check the error log; the machine may be out of processes or descriptors."
                    .to_string(),
            ),
            Failure::HeaderTimeout { secs } => (
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "`{path}` printed no header block within {secs} seconds, so it was stopped."
                ),
                "Make it print its headers sooner (or raise cgi.header_timeout_secs).".to_string(),
            ),
            Failure::RedirectLoop => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("`{path}` led to more than 10 internal redirects (a Location: loop)."),
                "Make the Location: header point at a page that does not redirect again."
                    .to_string(),
            ),
            Failure::Sandbox { error } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("`{path}` was not run: this site's sandbox could not be set up ({error})."),
                "This is the server's problem, not the script's: the host should look at the error log.".to_string(),
            ),
            Failure::MemoryLimit { limit } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "`{path}` was stopped: it used more than {}, the memory limit of this site (all of its scripts running at once count together).",
                    crate::sandbox::size(*limit)
                ),
                "Make the script use less memory (process data in pieces), or ask the host for a larger sandbox_memory_bytes.".to_string(),
            ),
            Failure::ProcessLimit { limit } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "`{path}` was stopped: it tried to run more than {limit} processes at once, the process limit of this site (all of its scripts count together)."
                ),
                "Make the script start fewer processes (a loop that forks without waiting is the usual cause), or ask the host for a larger sandbox_processes.".to_string(),
            ),
            _ => return None,
        })
    }

    /// Who the script runs as, and what that account may do.
    fn account(&self, path: &str) -> Option<(StatusCode, String, String)> {
        Some(match self {
            Failure::NoAccount { uid } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "`{path}` belongs to uid {uid}, which has no account, so there is nobody to run it as."
                ),
                format!(
                    "Upload it again over SFTP (what you upload belongs to the site's owner), or ask the host to run: chown USER {path}"
                ),
            ),
            Failure::NoFallbackUser { name } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "`{path}` is owned by a system account, so it would run as `{name}`, but that user does not exist."
                ),
                "Set cgi.fallback_user to an existing unprivileged user.".to_string(),
            ),
            Failure::WouldRunAsRoot => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("`{path}` would run as root, which the server never allows."),
                "Set cgi.fallback_user to an unprivileged user.".to_string(),
            ),
            Failure::TooManyProcesses { user } => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "`{path}` could not start: {user} already runs as many processes as cgi.limit_processes allows (the limit counts all of that user's processes)."
                ),
                "Raise cgi.limit_processes, or find what else runs as that user.".to_string(),
            ),
            Failure::NotPermitted { user } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "`{path}` runs as {user}, who is not allowed to execute it (or its interpreter, or to enter its directory)."
                ),
                format!(
                    "chmod 755 {path}, and make sure its directory is 755 (over SFTP, or in your client's permissions dialog)."
                ),
            ),
            Failure::Setup { step, error } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "Starting `{path}` failed while {}: {error}.",
                    step_text(*step)
                ),
                "Check the cgi.limit_* settings and the error log.".to_string(),
            ),
            _ => return None,
        })
    }

    /// Directories the account must enter.
    fn directories(&self, path: &str) -> Option<(StatusCode, String, String)> {
        Some(match self {
            Failure::DirNotEnterable {
                dir,
                mode,
                fix_mode,
                user,
            } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "`{path}` runs as {user}, who may not enter the directory `{dir}` ({mode:04o}), so it cannot start."
                ),
                format!(
                    "chmod {fix_mode:o} {dir} (over SFTP, or in your client's permissions dialog)"
                ),
            ),
            _ => return None,
        })
    }

    /// The interpreter and the first line of the script.
    fn exec(&self, path: &str) -> Option<(StatusCode, String, String)> {
        Some(match self {
            Failure::HandlerMissing { interpreter } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("`{path}` is run by {interpreter}, which is not installed."),
                format!("Install {interpreter}, or change cgi.handlers."),
            ),
            Failure::InterpreterNotFound { interpreter } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("`{path}` starts with `#!{interpreter}`, but {interpreter} does not exist."),
                "Correct the first line to the interpreter's real path (`which perl` tells where Perl is).".to_string(),
            ),
            Failure::CrlfShebang { interpreter } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("`{path}` has Windows (CRLF) line endings: the system looks for the interpreter `{}\\r`, which does not exist.", interpreter),
                "Save it with LF (Unix) line endings in your editor, then upload it again.".to_string(),
            ),
            Failure::Bom => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("`{path}` starts with a UTF-8 byte-order mark (EF BB BF) before `#!`, so the system does not see its #! line."),
                "Save it as UTF-8 without BOM (\"UTF-8\", not \"UTF-8 with BOM\") in your editor, then upload it again.".to_string(),
            ),
            Failure::NoShebang => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("`{path}` has no `#!` line naming its interpreter, and it is not a compiled program."),
                "Add a first line such as #!/bin/sh or #!/usr/bin/perl.".to_string(),
            ),
            _ => return None,
        })
    }

    /// What the script printed.
    fn output(&self, path: &str) -> Option<(StatusCode, String, String)> {
        Some(match self {
            Failure::Informational { status } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "`{path}` answered with status {status}, but a CGI script cannot send an informational (1xx) status: it is not a final response."
                ),
                "Send a final status such as `Status: 200 OK` (or leave Status out).".to_string(),
            ),
            Failure::NoHeaderBlock { first_bytes, exit } => {
                let ended = exit.map(|e| format!(" {e}")).unwrap_or_default();
                let reason = if first_bytes.is_empty() {
                    format!("`{path}`{ended} without printing anything.")
                } else {
                    format!(
                        "`{path}`{ended} without printing a header block; its output began with \"{first_bytes}\"."
                    )
                };
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    reason,
                    "Print a header such as `Content-Type: text/html` and an empty line before the body.".to_string(),
                )
            }
            Failure::BadHead { error, exit } => {
                let ended = exit.map(|e| format!(" (it {e})")).unwrap_or_default();
                let (reason, fix) = match error {
                    HeadError::Malformed { line } => (
                        format!("`{path}` printed a malformed header line: \"{line}\"{ended}."),
                        "Each header line must be `Name: value`, and an empty line must end the headers.".to_string(),
                    ),
                    HeadError::InvalidStatus { line } => (
                        format!("`{path}` printed an invalid Status header: \"{line}\"{ended}."),
                        "Use a three-digit code, e.g. `Status: 404 Not Found`.".to_string(),
                    ),
                    HeadError::BadStatusLine { line } => (
                        format!("`{path}` is an nph- script, but its first line is not an HTTP status line: \"{line}\"."),
                        "Start the output with e.g. `HTTP/1.1 200 OK`.".to_string(),
                    ),
                    HeadError::TooLarge { limit } => (
                        format!("`{path}` printed more than {limit} bytes without ending its header block with an empty line."),
                        "End the headers with an empty line (or raise cgi.max_header_bytes).".to_string(),
                    ),
                    HeadError::Incomplete => (
                        format!("`{path}` stopped in the middle of its header block{ended}."),
                        "End the headers with an empty line.".to_string(),
                    ),
                };
                (StatusCode::INTERNAL_SERVER_ERROR, reason, fix)
            }
            _ => return None,
        })
    }

    /// A short stable name, for log fields.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::BodyTooLarge { .. } => "body_too_large",
            Failure::BodyUnreadable { .. } => "body_unreadable",
            Failure::BodyTimeout { .. } => "body_timeout",
            Failure::Busy { .. } => "busy",
            Failure::ShareBusy { .. } => "share_busy",
            Failure::NoAccount { .. } => "no_account",
            Failure::NoFallbackUser { .. } => "no_fallback_user",
            Failure::WouldRunAsRoot => "would_run_as_root",
            Failure::Resources { .. } => "resources",
            Failure::HandlerMissing { .. } => "handler_missing",
            Failure::InterpreterNotFound { .. } => "interpreter_not_found",
            Failure::CrlfShebang { .. } => "crlf_shebang",
            Failure::Bom => "bom",
            Failure::NoShebang => "no_shebang",
            Failure::NotPermitted { .. } => "not_permitted",
            Failure::DirNotEnterable { .. } => "dir_not_enterable",
            Failure::TooManyProcesses { .. } => "too_many_processes",
            Failure::Setup { .. } => "setup",
            Failure::NoHeaderBlock { .. } => "no_header_block",
            Failure::BadHead { .. } => "bad_head",
            Failure::Informational { .. } => "informational_status",
            Failure::Changed => "changed_while_starting",
            Failure::HeaderTimeout { .. } => "header_timeout",
            Failure::RedirectLoop => "redirect_loop",
            Failure::Sandbox { .. } => "sandbox",
            Failure::MemoryLimit { .. } => "memory_limit",
            Failure::ProcessLimit { .. } => "process_limit",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.explain("the script").1.reason)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::BodyUnreadable { error }
            | Failure::Resources { error }
            | Failure::Setup { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn step_text(step: Step) -> &'static str {
    match step {
        Step::ProcessGroup => "creating its process group",
        Step::Limits => "setting its resource limits",
        Step::Descriptors => "connecting its input and output",
        Step::Identity => "switching to its user",
        Step::WorkingDirectory => "entering its directory",
        Step::Exec => "executing it",
        Step::Cgroup => "joining its site's cgroup",
        Step::Namespace => "entering its site's sandbox",
        Step::Landlock => "confining it to its site's files",
    }
}

/// Why `execve` failed, read from the script's first bytes (`first` holds up to 256 of them).
pub fn diagnose_exec(errno: i32, first: &[u8], user: &str) -> Failure {
    let bom = first.starts_with(b"\xEF\xBB\xBF");
    let shebang = first.strip_prefix(b"#!").map(|rest| {
        let line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
        let line = String::from_utf8_lossy(line);
        let line = line.trim_start_matches([' ', '\t']);
        line.split([' ', '\t']).next().unwrap_or("").to_string()
    });
    match (errno, shebang) {
        (_, _) if bom => Failure::Bom,
        (libc::ENOENT, Some(interp)) if interp.ends_with('\r') => Failure::CrlfShebang {
            interpreter: interp.trim_end_matches('\r').to_string(),
        },
        (libc::ENOENT, Some(interp)) => Failure::InterpreterNotFound {
            interpreter: interp,
        },
        (libc::ENOEXEC, None) => Failure::NoShebang,
        (libc::EAGAIN, _) => Failure::TooManyProcesses {
            user: user.to_string(),
        },
        (libc::EACCES, _) | (libc::EPERM, _) => Failure::NotPermitted {
            user: user.to_string(),
        },
        (e, _) => Failure::Setup {
            step: Step::Exec,
            error: std::io::Error::from_raw_os_error(e),
        },
    }
}

/// What `execve` will say about a script with these first bytes, predicted without running it
/// (for `yadokari explain`): `None` when it looks runnable.
pub fn predict_exec(first: &[u8]) -> Option<Failure> {
    if first.starts_with(b"\xEF\xBB\xBF") {
        return Some(Failure::Bom);
    }
    if first.starts_with(b"\x7fELF") {
        return None;
    }
    let Some(rest) = first.strip_prefix(b"#!") else {
        return Some(Failure::NoShebang);
    };
    let line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
    let line = String::from_utf8_lossy(line);
    let interp = line
        .trim_start_matches([' ', '\t'])
        .split([' ', '\t'])
        .next()
        .unwrap_or("");
    if let Some(bare) = interp.strip_suffix('\r') {
        return Some(Failure::CrlfShebang {
            interpreter: bare.to_string(),
        });
    }
    if !std::path::Path::new(interp).is_file() {
        return Some(Failure::InterpreterNotFound {
            interpreter: interp.to_string(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_failures_are_named_from_the_first_line() {
        assert!(matches!(
            diagnose_exec(libc::ENOENT, b"#!/usr/bin/perl\r\nprint 1;\r\n", "u"),
            Failure::CrlfShebang { interpreter } if interpreter == "/usr/bin/perl"
        ));
        assert!(matches!(
            diagnose_exec(libc::ENOEXEC, b"\xEF\xBB\xBF#!/bin/sh\n", "u"),
            Failure::Bom
        ));
        assert!(matches!(
            diagnose_exec(libc::ENOENT, b"#! /usr/bin/nope -w\n", "u"),
            Failure::InterpreterNotFound { interpreter } if interpreter == "/usr/bin/nope"
        ));
        assert!(matches!(
            diagnose_exec(libc::ENOEXEC, b"echo hi\n", "u"),
            Failure::NoShebang
        ));
        // RLIMIT_NPROC is checked at execve: EAGAIN there means the user has too many processes.
        let busy = diagnose_exec(libc::EAGAIN, b"#!/bin/sh\n", "the user `nobody`");
        assert!(matches!(busy, Failure::TooManyProcesses { .. }));
        assert_eq!(busy.explain("a.cgi").0, StatusCode::SERVICE_UNAVAILABLE);
        assert!(matches!(
            diagnose_exec(libc::EACCES, b"#!/bin/sh\n", "nobody"),
            Failure::NotPermitted { .. }
        ));
    }

    #[test]
    fn predictions_match_what_exec_would_say() {
        assert!(predict_exec(b"#!/bin/sh\necho\n").is_none());
        assert!(matches!(
            predict_exec(b"#!/bin/sh\r\n"),
            Some(Failure::CrlfShebang { .. })
        ));
        assert!(matches!(
            predict_exec(b"#!/no/such\n"),
            Some(Failure::InterpreterNotFound { .. })
        ));
        assert!(matches!(
            predict_exec(b"\xEF\xBB\xBF#!/bin/sh\n"),
            Some(Failure::Bom)
        ));
        assert!(matches!(
            predict_exec(b"echo hi\n"),
            Some(Failure::NoShebang)
        ));
        assert!(predict_exec(b"\x7fELF\x02").is_none());
    }

    #[test]
    fn crlf_explanation_names_the_exact_interpreter() {
        let (status, e) = Failure::CrlfShebang {
            interpreter: "/usr/bin/perl".into(),
        }
        .explain("cgi-bin/bbs.cgi");
        assert_eq!(status, 500);
        assert!(e.reason.contains("`/usr/bin/perl\\r`"), "{}", e.reason);
    }
}
