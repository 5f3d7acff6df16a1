//! Static hosting through the permission gate, ranges, validators, HEAD and redirects.

use std::io::{Read, Write};

use crate::support::{Site, raw_body, raw_status};

#[test]
fn file_modes_decide_like_an_apache_rental_server() {
    let site = Site::new();
    for mode in [0o644, 0o604, 0o404, 0o666, 0o640, 0o600, 0o000] {
        site.file(&format!("m{mode:o}.txt"), format!("mode {mode:o}"), mode);
    }
    let server = site.start();
    for mode in [0o644, 0o604, 0o404, 0o666] {
        let r = server.get(&format!("/m{mode:o}.txt"));
        assert_eq!(r.status, 200, "mode {mode:o}");
        assert_eq!(r.text(), format!("mode {mode:o}"));
    }
    for mode in [0o640, 0o600, 0o000] {
        let r = server.get(&format!("/m{mode:o}.txt"));
        assert_eq!(r.status, 403, "mode {mode:o}");
        assert!(r.text().contains("others may not read it"), "{}", r.text());
        assert!(!r.text().contains(&format!("mode {mode:o}")));
    }
    // Each refusal is in the error log with its reason.
    server.wait_for("reason=\"not_readable\"");
}

#[test]
fn directories_on_the_path_must_be_searchable_by_others() {
    let site = Site::new();
    site.dir("closed", 0o700);
    site.file("closed/a.txt", "a", 0o644);
    site.dir("open", 0o711);
    site.file("open/b.txt", "b", 0o644);
    site.chmod("closed", 0o700);
    let server = site.start();
    let r = server.get("/closed/a.txt");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("may not enter it"), "{}", r.text());
    assert_eq!(server.get("/open/b.txt").status, 200);
}

#[test]
fn ht_files_are_refused() {
    let site = Site::new();
    site.file(".htaccess", "Require all denied", 0o644);
    site.file("sub/.htpasswd", "user:hash", 0o644);
    let server = site.start();
    assert_eq!(server.get("/.htaccess").status, 403);
    let r = server.get("/sub/.htpasswd");
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("user:hash"));
}

#[test]
fn a_chmod_is_seen_by_the_very_next_request() {
    let site = Site::new();
    site.file("page.html", "<p>hi</p>", 0o644);
    let server = site.start();
    assert_eq!(server.get("/page.html").status, 200);
    site.chmod("page.html", 0o600);
    assert_eq!(server.get("/page.html").status, 403);
    site.chmod("page.html", 0o644);
    assert_eq!(server.get("/page.html").status, 200);
}

#[test]
fn content_type_index_files_and_missing_files() {
    let site = Site::new();
    site.file("index.html", "<h1>home</h1>", 0o644);
    site.file("style.css", "a{}", 0o644);
    site.file("docs/index.htm", "docs", 0o644);
    site.dir("empty", 0o755);
    let server = site.start();
    let r = server.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<h1>home</h1>");
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(
        server.get("/style.css").header("content-type"),
        Some("text/css")
    );
    assert_eq!(server.get("/docs/").text(), "docs");
    assert_eq!(server.get("/nope.html").status, 404);
    assert_eq!(server.get("/style.css/extra").status, 404);
    let r = server.get("/empty/");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("no index.html"), "{}", r.text());
}

#[test]
fn a_directory_without_its_slash_is_redirected_keeping_the_query() {
    let site = Site::new();
    site.file("docs/index.html", "docs", 0o644);
    let server = site.start();
    let r = server.get("/docs?lang=ja&x=1");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/docs/?lang=ja&x=1"));
}

#[test]
fn byte_ranges() {
    let site = Site::new();
    let content: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    site.file("data.bin", &content, 0o644);
    let server = site.start();

    let r = server.request("GET", "/data.bin", &[("Range", "bytes=0-99")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &content[..100]);
    assert_eq!(r.header("content-range"), Some("bytes 0-99/1000"));

    let r = server.request("GET", "/data.bin", &[("Range", "bytes=-10")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &content[990..]);

    let r = server.request("GET", "/data.bin", &[("Range", "bytes=990-")]);
    assert_eq!(r.body, &content[990..]);

    let r = server.request("GET", "/data.bin", &[("Range", "bytes=5000-6000")]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */1000"));

    let etag = server
        .get("/data.bin")
        .header("etag")
        .expect("etag")
        .to_string();
    let r = server.request(
        "GET",
        "/data.bin",
        &[("Range", "bytes=0-9"), ("If-Range", "\"stale\"")],
    );
    assert_eq!(r.status, 200, "a stale If-Range gets the whole file");
    let r = server.request(
        "GET",
        "/data.bin",
        &[("Range", "bytes=0-9"), ("If-Range", &etag)],
    );
    assert_eq!(r.status, 206);
}

#[test]
fn head_has_the_headers_and_no_body() {
    let site = Site::new();
    site.file("a.txt", "0123456789", 0o644);
    let server = site.start();
    let raw = server.raw(b"HEAD /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_status(&raw), 200);
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    assert!(text.contains("content-length: 10"), "{text}");
    assert!(raw_body(&raw).is_empty(), "HEAD sent a body: {text}");
}

#[test]
fn conditional_requests_get_304_on_either_validator() {
    let site = Site::new();
    site.file("a.txt", "hello", 0o644);
    let server = site.start();
    let first = server.get("/a.txt");
    let etag = first.header("etag").expect("etag").to_string();
    let modified = first
        .header("last-modified")
        .expect("last-modified")
        .to_string();

    let r = server.request("GET", "/a.txt", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = server.request("GET", "/a.txt", &[("If-Modified-Since", &modified)]);
    assert_eq!(r.status, 304);
    let r = server.request("GET", "/a.txt", &[("If-None-Match", "\"other\"")]);
    assert_eq!(r.status, 200);
    let r = server.request(
        "GET",
        "/a.txt",
        &[("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn other_methods_on_static_files_are_not_allowed() {
    let site = Site::new();
    site.file("a.txt", "hello", 0o644);
    let server = site.start();
    let r = server.send("POST", "/a.txt", &[], b"x=1");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

#[test]
fn a_large_file_is_streamed_whole() {
    let site = Site::new();
    let content: Vec<u8> = (0..(8u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    site.file("big.bin", &content, 0o644);
    let server = site.start();
    let r = server.get("/big.bin");
    assert_eq!(r.status, 200);
    assert!(
        r.body == content,
        "body differs ({} bytes received)",
        r.body.len()
    );
}

#[test]
fn the_access_log_uses_the_combined_log_format() {
    let site = Site::new();
    site.file("a.txt", "hello", 0o644);
    let server = site.start();
    server.request(
        "GET",
        "/a.txt?q=1",
        &[("User-Agent", "tester/1.0"), ("Referer", "http://ref/")],
    );
    let line = server.wait_for("\"GET /a.txt?q=1 HTTP/1.1\"");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.ends_with("\"GET /a.txt?q=1 HTTP/1.1\" 200 5 \"http://ref/\" \"tester/1.0\""),
        "{line}"
    );
}

#[test]
fn an_access_log_that_is_off_writes_nothing() {
    let site = Site::new().config("[server]\naccess_log = \"off\"");
    site.file("a.txt", "hello", 0o644);
    site.file("secret.txt", "no", 0o600);
    let server = site.start();
    assert_eq!(server.get("/a.txt").status, 200);
    // The refusal's warning is written after the first request's line would have been.
    assert_eq!(server.get("/secret.txt").status, 403);
    server.wait_for("refused");
    let output = server.output();
    assert!(!output.contains("\"GET /a.txt HTTP/1.1\""), "{output}");

    // Turned on again by a reload, the log gets the next request's line.
    let config = std::fs::read_to_string(site.config_path()).expect("read");
    std::fs::write(
        site.config_path(),
        config.replace("access_log = \"off\"", "access_log = \"-\""),
    )
    .expect("write");
    server.signal(nix::sys::signal::Signal::SIGHUP);
    server.wait_for("configuration reloaded");
    assert_eq!(server.get("/a.txt?again").status, 200);
    server.wait_for("\"GET /a.txt?again HTTP/1.1\" 200 5");
}

#[test]
fn a_1_gib_file_is_streamed_not_read_into_memory() {
    let site = Site::new();
    let path = site.file("huge.bin", b"", 0o644);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    // Sparse: 1 GiB on paper, almost nothing on disk, with a marker at the very end.
    std::os::unix::fs::FileExt::write_at(&file, b"THE-END", (1 << 30) - 7).expect("write");
    drop(file);
    let server = site.start();

    let r = server.request("GET", "/huge.bin", &[("Range", "bytes=-7")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &b"THE-END"[..]));

    // Read the first 64 MiB of the whole file slowly, and look at the server's memory.
    let mut s = server.connect();
    std::io::Write::write_all(
        &mut s,
        b"GET /huge.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("write");
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0usize;
    while total < 64 << 20 {
        let n = std::io::Read::read(&mut s, &mut buf).expect("read");
        assert!(n > 0, "ended after {total} bytes");
        total += n;
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("status");
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    assert!(
        rss_kib < 200 * 1024,
        "the server holds {rss_kib} KiB while sending a 1 GiB file"
    );
}

/// Splits `n` HTTP responses with Content-Length bodies off the front of `bytes`.
fn split_responses(mut bytes: &[u8], n: usize) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header block")
            + 4;
        let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("content-length");
        let status = head[9..12].parse().expect("status");
        out.push((status, bytes[end..end + len].to_vec()));
        bytes = &bytes[end + len..];
    }
    assert!(
        bytes.is_empty(),
        "{} bytes after the responses",
        bytes.len()
    );
    out
}

#[test]
fn pipelined_large_and_small_files_arrive_whole_and_in_order() {
    // Large bodies leave through sendfile, small ones through memory: on one connection they
    // must still come out byte-exact and in request order.
    let site = Site::new();
    let big: Vec<u8> = (0..(3u32 << 20) + 12_345)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let other: Vec<u8> = big.iter().rev().copied().collect();
    site.file("big.bin", &big, 0o644);
    site.file("other.bin", &other, 0o644);
    site.file("small.txt", "small", 0o644);
    let server = site.start();
    let mut s = server.connect();
    s.write_all(
        b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /other.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=100000-2200000\r\n\r\n\
          GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    let responses = split_responses(&buf, 4);
    assert_eq!(responses[0].0, 200);
    assert!(responses[0].1 == big, "first body differs");
    assert_eq!(responses[1], (200, b"small".to_vec()));
    assert_eq!(responses[2].0, 206);
    assert!(
        responses[2].1 == other[100_000..=2_200_000],
        "range differs"
    );
    assert!(responses[3].1 == big, "last body differs");
}

#[test]
fn a_file_truncated_while_it_is_sent_ends_the_connection_not_the_server() {
    let site = Site::new();
    let path = site.file("grow.bin", vec![7u8; 64 << 20], 0o644);
    let server = site.start();
    let mut s = server.connect();
    s.write_all(b"GET /grow.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut buf = vec![0u8; 1 << 20];
    let mut total = s.read(&mut buf).expect("read");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(1 << 20))
        .expect("truncate");
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    assert!(
        total < 64 << 20,
        "the whole 64 MiB arrived although the file shrank to 1 MiB"
    );
    server.wait_for("shorter while it was being sent");
    let r = server.get("/grow.bin");
    assert_eq!((r.status, r.body.len()), (200, 1 << 20));
}

#[test]
fn a_fifo_is_refused_without_hanging_the_request() {
    // The last segment of a static path is opened before it is judged (O_NONBLOCK): a FIFO
    // with no writer must get its refusal, not hang the worker.
    let site = Site::new();
    site.file("a.txt", "hello", 0o644);
    nix::unistd::mkfifo(
        &site.path("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");
    std::os::unix::fs::symlink("pipe", site.path("link-to-pipe")).expect("symlink");
    let server = site.start();
    for path in ["/pipe", "/link-to-pipe"] {
        let r = server.get(path);
        assert_eq!(r.status, 403, "{path}");
    }
    assert_eq!(server.get("/a.txt").status, 200);
}

#[test]
fn if_match_and_if_unmodified_since_give_412() {
    let site = Site::new();
    site.file("a.txt", "abc", 0o644);
    let server = site.start();
    let etag = server
        .get("/a.txt")
        .header("etag")
        .expect("etag")
        .to_string();
    let status = |headers: &[(&str, &str)]| server.request("GET", "/a.txt", headers).status;
    assert_eq!(status(&[("If-Match", &etag)]), 200);
    assert_eq!(status(&[("If-Match", "*")]), 200);
    assert_eq!(status(&[("If-Match", "\"other\", \"nope\"")]), 412);
    assert_eq!(status(&[("If-Match", &format!("W/{etag}"))]), 412);
    assert_eq!(
        status(&[("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")]),
        412
    );
    assert_eq!(
        status(&[("If-Unmodified-Since", "Fri, 01 Jan 2100 00:00:00 GMT")]),
        200
    );
}

#[test]
fn if_range_with_a_date_needs_a_file_older_than_a_second() {
    let site = Site::new();
    let old = site.file("old.txt", "abcdef", 0o644);
    // Last modified long ago: its date is a strong validator.
    let past = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .and_then(|f| f.set_modified(past))
        .expect("set mtime");
    let server = site.start();
    let lm = server
        .get("/old.txt")
        .header("last-modified")
        .expect("lm")
        .to_string();
    let r = server.request(
        "GET",
        "/old.txt",
        &[("Range", "bytes=0-1"), ("If-Range", &lm)],
    );
    assert_eq!((r.status, r.text()), (206, "ab".to_string()));

    // Written just now: another write within this second would keep the same date, so the
    // date cannot vouch for the content and the whole file is sent.
    site.file("new.txt", "abcdef", 0o644);
    let lm = server
        .get("/new.txt")
        .header("last-modified")
        .expect("lm")
        .to_string();
    let r = server.request(
        "GET",
        "/new.txt",
        &[("Range", "bytes=0-1"), ("If-Range", &lm)],
    );
    assert_eq!(r.status, 200);
}
