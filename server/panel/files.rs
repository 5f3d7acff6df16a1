//! The panel's file manager actions, beside the permission form: download, new folder,
//! rename, delete (after a confirmation page), upload (several files, streamed to disk as an
//! SFTP upload is: a temporary file renamed into place, counted against the quota) and editing
//! a text file in the page. Each goes through [`sftp_upload::Home`] on a thread holding the
//! customer's identity, and each is logged as a transfer line.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use sftp_upload::Home;

use super::form::value;
use super::{Act, Reply, page, text};

/// The largest file the page editor opens.
const MAX_EDIT: u64 = 1024 * 1024;
/// Chunks of an upload in flight between the request and the writing thread.
const UPLOAD_QUEUE: usize = 16;
/// Files in one upload, at most.
const MAX_FILES: usize = 100;
/// How long an upload may send nothing before it is given up.
const UPLOAD_STALL: std::time::Duration = std::time::Duration::from_secs(60);

/// Why `name` cannot be one file's name, if it cannot.
fn bad_name(name: &[u8]) -> Option<&'static str> {
    match name {
        b"" => Some("a name cannot be empty"),
        b"." | b".." => Some("`.` and `..` are not names"),
        n if n.len() > 255 => Some("a name has at most 255 bytes"),
        n if n.contains(&b'/') => Some("a name cannot hold `/`"),
        n if n.contains(&0) => Some("a name cannot hold a NUL byte"),
        _ => None,
    }
}

/// `dir`/`name`.
fn join(dir: &str, name: &[u8]) -> Vec<u8> {
    let mut path = dir.trim_end_matches('/').as_bytes().to_vec();
    path.push(b'/');
    path.extend_from_slice(name);
    path
}

/// The directory holding `path` (`/` for a name in the home).
pub(super) fn parent(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((p, _)) => p,
    }
}

/// What is done with one piece of an upload.
enum Piece {
    Data(Bytes),
    /// The whole file has arrived: put it in place.
    End,
}

impl Act<'_> {
    /// A path from the query or a form, normalised; `None` for one with a NUL byte.
    fn path_of(pairs: &[(String, Vec<u8>)], name: &str) -> Option<String> {
        Home::normalise(value(pairs, name).unwrap_or(b"/"))
    }

    /// Sends a file.
    pub(super) async fn download(&self, q: &[(String, Vec<u8>)]) -> Reply {
        let Some(path) = Self::path_of(q, "path") else {
            return self.trouble(StatusCode::BAD_REQUEST, "that path has a NUL byte");
        };
        let p = path.clone();
        let opened = self
            .in_home(move |home, _| home.open_read(p.as_bytes()))
            .await;
        let file = match opened {
            Ok(f) => f,
            Err(e) => return self.trouble(StatusCode::NOT_FOUND, &format!("{path}: {e}")),
        };
        let size = file.metadata().map(|m| m.len()).ok();
        tracing::info!(user = %self.user.name, op = "download", via = "panel", path = %path, "transfer");
        let stream = tokio_util::io::ReaderStream::with_capacity(
            tokio::fs::File::from_std(file),
            256 * 1024,
        );
        let body = StreamBody::new(futures_util::StreamExt::map(stream, |chunk| {
            chunk.map(http_body::Frame::data)
        }));
        let mut r = Response::new(body.boxed());
        let name = path.rsplit('/').next().unwrap_or("file");
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!(
            "attachment; filename*=UTF-8''{}",
            page::query(name.as_bytes())
        )) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        if let Some(size) = size {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        }
        r
    }

    /// Makes a folder in a directory.
    pub(super) async fn mkdir(&self, form: &[(String, Vec<u8>)]) -> Reply {
        let (Some(dir), name) = (
            Self::path_of(form, "dir"),
            value(form, "name").unwrap_or_default(),
        ) else {
            return self.trouble(StatusCode::BAD_REQUEST, "that path has a NUL byte");
        };
        if let Some(why) = bad_name(name) {
            return self.trouble(StatusCode::BAD_REQUEST, why);
        }
        let path = join(&dir, name);
        let shown = String::from_utf8_lossy(&path).into_owned();
        let p = path.clone();
        let made = self.in_home(move |home, _| home.mkdir(&p)).await;
        self.done(
            "mkdir",
            &shown,
            made.map(|()| format!("made the folder {shown}")),
        )
        .then_list(self, &dir)
        .await
    }

    /// Renames a file or a folder within its directory.
    pub(super) async fn rename(&self, form: &[(String, Vec<u8>)]) -> Reply {
        let Some(path) = Self::path_of(form, "path") else {
            return self.trouble(StatusCode::BAD_REQUEST, "that path has a NUL byte");
        };
        let to = value(form, "to").unwrap_or_default();
        if let Some(why) = bad_name(to) {
            return self.trouble(StatusCode::BAD_REQUEST, why);
        }
        let dir = parent(&path).to_string();
        let target = join(&dir, to);
        let shown = String::from_utf8_lossy(&target).into_owned();
        let from = path.clone();
        let moved = self
            .in_home(move |home, _| home.rename(from.as_bytes(), &target))
            .await;
        self.done(
            "rename",
            &path,
            moved.map(|()| format!("renamed {path} to {shown}")),
        )
        .then_list(self, &dir)
        .await
    }

    /// The page that asks before a delete.
    pub(super) fn confirm_delete(&self, q: &[(String, Vec<u8>)]) -> Reply {
        let Some(path) = Self::path_of(q, "path") else {
            return self.trouble(StatusCode::BAD_REQUEST, "that path has a NUL byte");
        };
        self.page("Delete?", &page::confirm_delete(&path, &self.session.csrf))
    }

    /// Deletes a file, a link or an empty folder.
    pub(super) async fn delete(&self, form: &[(String, Vec<u8>)]) -> Reply {
        let Some(path) = Self::path_of(form, "path") else {
            return self.trouble(StatusCode::BAD_REQUEST, "that path has a NUL byte");
        };
        let p = path.clone();
        let gone = self.in_home(move |home, _| home.remove(p.as_bytes())).await;
        self.done("remove", &path, gone.map(|()| format!("deleted {path}")))
            .then_list(self, parent(&path))
            .await
    }

    /// Receives the files of a multipart form into `dir`, each written as an SFTP upload is.
    pub(super) async fn upload(&self, req: Request<hyper::body::Incoming>, dir: String) -> Reply {
        let boundary = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|ct| multer::parse_boundary(ct).ok());
        let Some(boundary) = boundary else {
            return text(
                StatusCode::BAD_REQUEST,
                "an upload is a multipart/form-data form\n",
            );
        };
        let mut multipart = multer::Multipart::new(req.into_body().into_data_stream(), boundary);
        let mut said = Vec::new();
        let mut files = 0;
        loop {
            let next = tokio::time::timeout(UPLOAD_STALL, multipart.next_field()).await;
            let mut field = match next {
                Ok(Ok(Some(field))) => field,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    said.push(format!("the upload was cut off ({e})"));
                    break;
                }
                Err(_) => {
                    said.push("the upload stalled and was given up".into());
                    break;
                }
            };
            files += 1;
            if files > MAX_FILES {
                said.push(format!(
                    "only {MAX_FILES} files are taken in one upload; send the rest in another"
                ));
                break;
            }
            let Some(name) = field.file_name().map(|n| n.as_bytes().to_vec()) else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            if let Some(why) = bad_name(&name) {
                said.push(format!("{}: {why}", String::from_utf8_lossy(&name)));
                continue;
            }
            let path = join(&dir, &name);
            let shown = String::from_utf8_lossy(&path).into_owned();
            // Each file being written holds a thread of the blocking pool, which the whole
            // server shares: only a few at once.
            let Ok(_writer) = self.panel.writers.acquire().await else {
                break;
            };
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Piece>(UPLOAD_QUEUE);
            let target = path.clone();
            let writing = self.in_home(move |home, state| {
                let mut writer = home.write(&target)?;
                loop {
                    match rx.blocking_recv() {
                        Some(Piece::Data(bytes)) => writer.write_all(&bytes)?,
                        Some(Piece::End) => break,
                        // The request ended before the file did: nothing is put in place.
                        None => return Err("the upload was cut off".to_string()),
                    }
                }
                let bytes = writer.written();
                let mode = writer.commit()?;
                let badge = super::badge_of(state, home.root(), &target, None);
                Ok((mode, bytes, badge))
            });
            // Moves the sender in: when the file has been fed, it is dropped, and the writer
            // learns that nothing more comes.
            let feeding = async move {
                loop {
                    let chunk = tokio::time::timeout(UPLOAD_STALL, field.chunk()).await;
                    match chunk.unwrap_or(Err(multer::Error::IncompleteStream)) {
                        Ok(Some(bytes)) => {
                            if tx.send(Piece::Data(bytes)).await.is_err() {
                                return; // the writer stopped (it says why)
                            }
                        }
                        Ok(None) => {
                            let _ = tx.send(Piece::End).await;
                            return;
                        }
                        Err(_) => return,
                    }
                }
            };
            let (written, ()) = tokio::join!(writing, feeding);
            match written {
                Ok((mode, bytes, badge)) => {
                    tracing::info!(user = %self.user.name, op = "upload", via = "panel", path = %shown, bytes, mode = %format_args!("{mode:04o}"), web = %badge.line, "transfer");
                    said.push(format!(
                        "{shown}: {bytes} bytes, {mode:04o}: {}",
                        badge.line
                    ));
                }
                Err(e) => {
                    tracing::warn!(user = %self.user.name, op = "upload", via = "panel", path = %shown, error = %e, "panel action failed");
                    said.push(format!("{shown}: not uploaded: {e}"));
                }
            }
        }
        self.directory_with(&dir, 0, Some(said.join("\n"))).await
    }

    /// The editor: a text file in a text area, with a warning (and the fix offered) when a
    /// script's first line starts with a byte order mark or ends in a carriage return.
    pub(super) async fn edit(&self, q: &[(String, Vec<u8>)]) -> Reply {
        let Some(path) = Self::path_of(q, "path") else {
            return self.trouble(StatusCode::BAD_REQUEST, "that path has a NUL byte");
        };
        let p = path.clone();
        let read = self
            .in_home(move |home, _| {
                use std::io::Read;
                let file = home.open_read(p.as_bytes())?;
                let size = file.metadata().map_err(|e| e.to_string())?.len();
                if size > MAX_EDIT {
                    return Err(format!(
                        "it has {size} bytes; the page edits files of up to {MAX_EDIT}"
                    ));
                }
                let mut bytes = Vec::new();
                file.take(MAX_EDIT)
                    .read_to_end(&mut bytes)
                    .map_err(|e| e.to_string())?;
                String::from_utf8(bytes)
                    .map_err(|_| "it is not text (UTF-8); download it instead".to_string())
            })
            .await;
        match read {
            Ok(content) => self.page(
                &format!("Edit {path}"),
                &page::editor(&path, &content, line_trouble(&content), &self.session.csrf),
            ),
            Err(e) => self.trouble(StatusCode::BAD_REQUEST, &format!("{path}: {e}")),
        }
    }

    /// Saves the editor's text (atomically, keeping the file's mode); with `fix`, without a
    /// byte order mark and with Unix line ends.
    pub(super) async fn save(&self, form: &[(String, Vec<u8>)]) -> Reply {
        let Some(path) = Self::path_of(form, "path") else {
            return self.trouble(StatusCode::BAD_REQUEST, "that path has a NUL byte");
        };
        let mut content = value(form, "content").unwrap_or_default().to_vec();
        // A browser sends a text area's lines ended by CR LF, whatever the file had.
        if value(form, "crlf") != Some(b"keep") || value(form, "fix").is_some() {
            content = crlf_to_lf(&content);
        }
        if value(form, "fix").is_some() {
            content = content
                .strip_prefix("\u{feff}".as_bytes())
                .map(<[u8]>::to_vec)
                .unwrap_or(content);
        }
        let p = path.clone();
        let saved = self
            .in_home(move |home, state| {
                let mut writer = home.write(p.as_bytes())?;
                writer.write_all(&content)?;
                let bytes = writer.written();
                let mode = writer.commit()?;
                let badge = super::badge_of(state, home.root(), p.as_bytes(), None);
                Ok((mode, bytes, badge))
            })
            .await;
        match saved {
            Ok((mode, bytes, badge)) => {
                tracing::info!(user = %self.user.name, op = "upload", via = "panel", path = %path, bytes, mode = %format_args!("{mode:04o}"), web = %badge.line, "transfer");
                let q = vec![("path".to_string(), path.clone().into_bytes())];
                self.file(
                    &q,
                    Some(format!(
                        "saved {path} ({bytes} bytes, {mode:04o}): {}",
                        badge.line
                    )),
                )
                .await
            }
            Err(e) => {
                tracing::warn!(user = %self.user.name, op = "upload", via = "panel", path = %path, error = %e, "panel action failed");
                self.trouble(StatusCode::FORBIDDEN, &format!("{path}: {e}"))
            }
        }
    }

    /// What an action did: logged, and said on the page that follows.
    fn done(&self, op: &'static str, path: &str, result: Result<String, String>) -> Done {
        match &result {
            Ok(_) => {
                tracing::info!(user = %self.user.name, op, via = "panel", path = %path, "transfer")
            }
            Err(e) => {
                tracing::warn!(user = %self.user.name, op, via = "panel", path = %path, error = %e, "panel action failed")
            }
        }
        Done(result)
    }
}

/// An action's outcome, shown on the directory's page.
struct Done(Result<String, String>);

impl Done {
    async fn then_list(self, act: &Act<'_>, dir: &str) -> Reply {
        match self.0 {
            Ok(said) => act.directory_with(dir, 0, Some(said)).await,
            Err(e) => act.trouble(StatusCode::FORBIDDEN, &e),
        }
    }
}

/// The first-line trouble of a script's text, in words: a byte order mark, a carriage return.
fn line_trouble(content: &str) -> Option<String> {
    let bom = content.starts_with('\u{feff}');
    // Not `lines()`: it would take the carriage return off with the line feed.
    let first = content
        .trim_start_matches('\u{feff}')
        .split('\n')
        .next()
        .unwrap_or("");
    // Only a script's first line matters (a text file with a BOM is fine).
    let script = first.starts_with("#!");
    let cr = first.ends_with('\r');
    match (script, bom, cr) {
        (true, true, true) => Some("its first line starts with a byte order mark and ends in a carriage return (Windows line ends): the system looks for an interpreter named with those bytes and the script will not start".into()),
        (true, true, false) => Some("it starts with a byte order mark: the system does not see the `#!` line and the script will not start".into()),
        (true, false, true) => Some("its first line ends in a carriage return (Windows line ends): the system looks for an interpreter whose name ends in \\r and the script will not start".into()),
        _ => None,
    }
}

/// `bytes` with every CR LF made LF.
fn crlf_to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_line_ends() {
        assert!(bad_name(b"ok.cgi").is_none());
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
            assert!(bad_name(bad).is_some());
        }
        assert_eq!(crlf_to_lf(b"a\r\nb\rc\r\n"), b"a\nb\rc\n");
        assert!(line_trouble("#!/bin/sh\r\necho\r\n").is_some());
        assert!(line_trouble("\u{feff}#!/bin/sh\n").is_some());
        assert!(line_trouble("#!/bin/sh\n").is_none());
        assert!(line_trouble("plain text\r\n").is_none());
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
    }
}
