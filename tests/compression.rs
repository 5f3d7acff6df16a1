//! Compression end to end: gzip and brotli chosen by `Accept-Encoding`, decoded here with
//! flate2 and brotli and compared with the files; precompressed siblings, ranges, validators
//! per encoding, and scripts' output with `compress_cgi`.

use std::io::{Read, Write};
use std::time::{Duration, SystemTime};

use crate::support::{Resp, Site, curl, have, raw_body, raw_status};

/// About 300 KiB of text that compresses the way a real page does (not a run of one byte).
fn text(len: usize) -> Vec<u8> {
    let words = [
        "rental ",
        "server ",
        "hermit ",
        "crab ",
        "shell ",
        "<p>CGI</p>\n",
        "2026 ",
    ];
    let mut out = Vec::with_capacity(len + 16);
    let mut x: u32 = 7;
    while out.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        out.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
    }
    out.truncate(len);
    out
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .expect("a brotli body");
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn set_mtime(path: &std::path::Path, when: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .expect("set mtime");
}

fn asking(server: &crate::support::Server, path: &str, accept: &str) -> Resp {
    server.request("GET", path, &[("Accept-Encoding", accept)])
}

#[test]
fn gzip_and_br_bodies_decode_to_the_file() {
    let site = Site::new();
    let big = text(300 * 1024);
    let page = text(2000);
    site.file("big.txt", &big, 0o644);
    site.file("page.html", &page, 0o644);
    let server = site.start();
    for (path, content) in [("/big.txt", &big), ("/page.html", &page)] {
        let r = asking(&server, path, "gzip");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        assert_eq!(r.header("content-length"), None, "streamed: {path}");
        assert!(
            r.body.len() < content.len() / 2,
            "{path} was not compressed"
        );
        assert_eq!(&gunzip(&r.body), content, "{path} gzip");

        let r = asking(&server, path, "gzip;q=0.8, br");
        assert_eq!(r.header("content-encoding"), Some("br"), "{path}");
        assert_eq!(&unbrotli(&r.body), content, "{path} br");
    }
    // The access log counts the bytes that went out: the compressed ones.
    let r = asking(&server, "/big.txt", "gzip");
    server.wait_for(&format!("\"GET /big.txt HTTP/1.1\" 200 {} ", r.body.len()));

    if have("curl") {
        let c = curl(&server, &["--compressed"], "/page.html");
        assert_eq!(c.status, 200);
        assert!(c.header("content-encoding").is_some(), "{}", c.head);
        assert_eq!(c.body.as_bytes(), &page[..]);
    }
}

#[test]
fn identity_when_the_client_refuses_or_does_not_ask() {
    let site = Site::new();
    let page = text(4000);
    site.file("page.html", &page, 0o644);
    site.file("tiny.html", "<p>short</p>", 0o644);
    let server = site.start();
    for accept in ["gzip;q=0", "identity", "br;q=0, gzip;q=0", "compress"] {
        let r = asking(&server, "/page.html", accept);
        assert_eq!(r.header("content-encoding"), None, "{accept}");
        assert_eq!(r.body, page, "{accept}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{accept}");
        assert_eq!(r.header("content-length"), Some("4000"));
    }
    let r = server.get("/page.html");
    assert_eq!((r.header("content-encoding"), &r.body), (None, &page));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let r = asking(&server, "/page.html", "br;q=0, gzip");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    // A tiny body is not worth it.
    let r = asking(&server, "/tiny.html", "gzip, br");
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.text(), "<p>short</p>");
}

#[test]
fn a_range_request_and_an_image_are_never_compressed() {
    let site = Site::new();
    let page = text(10_000);
    site.file("page.html", &page, 0o644);
    // PNG signature, then bytes that would compress well: the type alone decides.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(std::iter::repeat_n(0u8, 5000));
    site.file("pic.png", &png, 0o644);
    let server = site.start();
    let r = server.request(
        "GET",
        "/page.html",
        &[("Accept-Encoding", "gzip, br"), ("Range", "bytes=100-199")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, &page[100..200]);
    let r = asking(&server, "/pic.png", "gzip, br");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), None);
    assert_eq!(r.body, png);
}

#[test]
fn a_precompressed_sibling_is_sent_as_it_is_and_a_stale_one_is_not() {
    let site = Site::new();
    let css = text(20_000);
    let original = site.file("style.css", &css, 0o644);
    let sibling = gzip(&css);
    site.file("style.css.gz", &sibling, 0o644);
    let server = site.start();
    let r = asking(&server, "/style.css", "gzip");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-type"), Some("text/css"));
    assert_eq!(r.body, sibling, "the sibling's own bytes");
    assert_eq!(
        r.header("content-length"),
        Some(&*sibling.len().to_string())
    );
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));

    // The stylesheet is uploaded again; the old .gz is now older than it: compressed afresh.
    let newer = text(21_000);
    std::fs::write(&original, &newer).expect("write");
    let gz = site.path("style.css.gz");
    set_mtime(&gz, SystemTime::now() - Duration::from_secs(3600));
    let r = asking(&server, "/style.css", "gzip");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-length"), None);
    assert_eq!(gunzip(&r.body), newer);

    // Fresh again, but others may not read it: the gate says no, so it is not used either.
    set_mtime(&gz, SystemTime::now() + Duration::from_secs(5));
    site.chmod("style.css.gz", 0o640);
    let r = asking(&server, "/style.css", "gzip");
    assert_eq!(gunzip(&r.body), newer);
    assert_eq!(r.header("content-length"), None);
    // A link as the sibling is never followed.
    std::fs::remove_file(&gz).expect("rm");
    site.file("other.gz", gzip(b"not the stylesheet"), 0o644);
    std::os::unix::fs::symlink("other.gz", &gz).expect("symlink");
    let r = asking(&server, "/style.css", "gzip");
    assert_eq!(gunzip(&r.body), newer);
}

#[test]
fn etags_differ_per_encoding_and_conditional_requests_follow_them() {
    let site = Site::new();
    site.file("page.html", text(3000), 0o644);
    let server = site.start();
    let plain = server.get("/page.html");
    let gz = asking(&server, "/page.html", "gzip");
    let br = asking(&server, "/page.html", "br");
    let tags: Vec<&str> = [&plain, &gz, &br]
        .iter()
        .map(|r| r.header("etag").expect("etag"))
        .collect();
    assert!(
        tags[1].ends_with("-gz\"") && tags[2].ends_with("-br\""),
        "{tags:?}"
    );
    assert!(tags.iter().all(|t| t.starts_with('"')), "strong: {tags:?}");
    assert_ne!(tags[0], tags[1]);
    assert_ne!(tags[1], tags[2]);

    let again = |accept: &str, tag: &str| {
        server.request(
            "GET",
            "/page.html",
            &[("Accept-Encoding", accept), ("If-None-Match", tag)],
        )
    };
    let r = again("gzip", tags[1]);
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(tags[1]));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    // The gzip tag does not stand for the other representations.
    assert_eq!(again("br", tags[1]).status, 200);
    assert_eq!(again("identity", tags[1]).status, 200);
    assert_eq!(again("identity", tags[0]).status, 304);
}

#[test]
fn head_gets_the_headers_of_get_and_no_body() {
    let site = Site::new();
    site.file("page.html", text(3000), 0o644);
    let server = site.start();
    let out = server.raw(
        b"HEAD /page.html HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(raw_status(&out), 200);
    let head = String::from_utf8_lossy(&out).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(
        head.contains("etag: \"") && head.contains("-gz\""),
        "{head}"
    );
    assert!(raw_body(&out).is_empty(), "{head}");
}

#[test]
fn static_compression_can_be_turned_off() {
    let site = Site::new().config("[server]\ncompress = false");
    site.file("page.html", text(3000), 0o644);
    site.file("page.html.gz", gzip(&text(3000)), 0o644);
    let server = site.start();
    let r = asking(&server, "/page.html", "gzip, br");
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), None);
    assert_eq!(r.body, text(3000));
}

/// A script printing 4000 bytes of text with the type (and extra header) its query names.
const SCRIPT: &str = "#!/bin/sh\n\
case \"$QUERY_STRING\" in\n\
png) printf 'Content-Type: image/png\\n\\n' ;;\n\
coded) printf 'Content-Type: text/plain\\nContent-Encoding: x-custom\\n\\n' ;;\n\
*) printf 'Content-Type: text/plain\\n\\n' ;;\n\
esac\n\
i=0\n\
while [ $i -lt 100 ]; do printf '%039d\\n' $i; i=$((i+1)); done\n";

fn script_output() -> Vec<u8> {
    (0..100)
        .flat_map(|i| format!("{i:039}\n").into_bytes())
        .collect()
}

#[test]
fn script_output_is_compressed_only_with_compress_cgi() {
    let off = Site::new();
    off.file("cgi-bin/out.cgi", SCRIPT, 0o755);
    let server = off.start();
    let r = asking(&server, "/cgi-bin/out.cgi", "gzip, br");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, script_output());
    drop(server);

    let on = Site::new().config("[server]\ncompress_cgi = true");
    on.file("cgi-bin/out.cgi", SCRIPT, 0o755);
    let server = on.start();
    let r = asking(&server, "/cgi-bin/out.cgi", "gzip");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(gunzip(&r.body), script_output());
    let r = asking(&server, "/cgi-bin/out.cgi", "br");
    assert_eq!(unbrotli(&r.body), script_output());
    let r = asking(&server, "/cgi-bin/out.cgi", "gzip;q=0");
    assert_eq!(
        (r.header("content-encoding"), &r.body),
        (None, &script_output())
    );
    // Not a compressible type, or coded by the script itself: left as the script wrote it.
    let r = asking(&server, "/cgi-bin/out.cgi?png", "gzip");
    assert_eq!(
        (r.header("content-encoding"), &r.body),
        (None, &script_output())
    );
    let r = asking(&server, "/cgi-bin/out.cgi?coded", "gzip");
    assert_eq!(r.header("content-encoding"), Some("x-custom"));
    assert_eq!(r.body, script_output());
}

/// The body of a chunked HTTP/1.1 message.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size");
        let size = usize::from_str_radix(std::str::from_utf8(&body[..line_end]).expect("hex"), 16)
            .expect("chunk size");
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
}

#[test]
fn compressed_script_output_still_streams() {
    let site = Site::new().config("[server]\ncompress_cgi = true");
    let go = site.dir.path().join("go");
    let script = format!(
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\n\
         i=0; while [ $i -lt 40 ]; do echo \"line $i of the first burst\"; i=$((i+1)); done\n\
         n=0; while [ ! -e {} ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done\n\
         [ -e {} ] && echo done || echo 'never told to go on'\n",
        go.display(),
        go.display()
    );
    site.file("cgi-bin/slow.cgi", script, 0o755);
    let server = site.start();
    let mut s = server.connect();
    s.write_all(b"GET /cgi-bin/slow.cgi HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
        .expect("write");
    // The first burst arrives, compressed, while the script still waits (held back until the
    // end, the script would give up waiting and say so).
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while raw_body(&got).is_empty() {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    std::fs::write(&go, "").expect("go");
    s.read_to_end(&mut got).expect("read");
    let head = String::from_utf8_lossy(&got[..got.len() - raw_body(&got).len()]).to_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let text = String::from_utf8(gunzip(&dechunk(raw_body(&got)))).expect("utf-8");
    assert!(text.starts_with("line 0 of the first burst\n"), "{text}");
    assert!(
        text.ends_with("line 39 of the first burst\ndone\n"),
        "{text}"
    );
}
