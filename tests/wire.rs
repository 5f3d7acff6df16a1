//! The HTTP wire: malformed and hostile requests, timeouts, caps and keep-alive.

use std::io::{Read, Write};
use std::time::Duration;

use crate::support::{Site, eventually, raw_status};

#[test]
fn both_content_length_and_transfer_encoding_is_refused() {
    let site = Site::new();
    site.file("a.txt", "a", 0o644);
    let server = site.start();
    let raw = server.raw(
        b"POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(raw_status(&raw), 400);
}

#[test]
fn an_oversized_header_block_gets_431() {
    let site = Site::new();
    site.file("a.txt", "a", 0o644);
    let server = site.start();
    let big = "x".repeat(40 * 1024);
    let raw =
        server.raw(format!("GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes());
    assert_eq!(raw_status(&raw), 431);
}

#[test]
fn malformed_requests_get_400() {
    let site = Site::new();
    let server = site.start();
    assert_eq!(raw_status(&server.raw(b"GARBAGE\r\n\r\n")), 400);
    assert_eq!(
        raw_status(&server.raw(b"GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n")),
        400
    );
    assert_eq!(
        raw_status(&server.raw(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")),
        400
    );
}

#[test]
fn a_slow_header_sender_is_cut_off() {
    let site =
        Site::new().config("[limits]\nheader_read_timeout_secs = 1\nkeep_alive_timeout_secs = 30");
    site.file("a.txt", "a", 0o644);
    let server = site.start();
    let mut s = server.connect();
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    // Never finish the header block: the server must close the connection by itself.
    let mut buf = Vec::new();
    let n = s.read_to_end(&mut buf);
    assert!(n.is_ok(), "the connection was not closed: {n:?}");
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let site = Site::new().config("[limits]\nkeep_alive_timeout_secs = 1");
    site.file("a.txt", "hello", 0o644);
    let server = site.start();
    let mut s = server.connect();
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut buf = Vec::new();
    // The response comes, then, with no further request, the server closes the connection.
    let n = s.read_to_end(&mut buf);
    assert!(n.is_ok(), "the idle connection was not closed: {n:?}");
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("hello"),
        "{text}"
    );
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let site = Site::new();
    site.file("a.txt", "hello", 0o644);
    let server = site.start();
    let mut s = server.connect();
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    let text = String::from_utf8_lossy(&buf);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
}

#[test]
fn connections_over_the_cap_wait_for_a_free_slot() {
    let site = Site::new().config("[limits]\nmax_connections = 1\nkeep_alive_timeout_secs = 60");
    site.file("a.txt", "hello", 0o644);
    let server = site.start();
    let mut first = server.connect();
    first
        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 512];
    let n = first.read(&mut buf).expect("first answered");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));

    let mut second = server.connect();
    second
        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    second
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let waited = second.read(&mut buf);
    assert!(
        waited.is_err(),
        "the second connection was served while the first held the only slot"
    );

    drop(first);
    second
        .set_read_timeout(Some(crate::support::PATIENCE))
        .expect("timeout");
    let mut rest = Vec::new();
    second
        .read_to_end(&mut rest)
        .expect("second answered once the slot is free");
    assert!(String::from_utf8_lossy(&rest).contains("200 OK"));
}

#[test]
fn a_client_that_stops_reading_is_cut_off() {
    let site = Site::new().config("[limits]\nsend_timeout_secs = 1");
    site.file("big.bin", vec![b'z'; 32 << 20], 0o644);
    let server = site.start();
    let mut s = server.connect();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut first = [0u8; 1024];
    assert!(s.read(&mut first).expect("read") > 0);
    server.wait_for("client stopped reading");
    // The server gave up: what is left to read ends well before 32 MiB.
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.len() < 32 << 20, "the whole file was sent anyway");
}

#[test]
fn host_is_required_once_and_must_be_a_host_name() {
    let site = Site::new();
    site.file(
        "cgi-bin/name.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s' \"$SERVER_NAME\"\n",
        0o755,
    );
    let server = site.start();
    for (request, status) in [
        (
            &b"GET /cgi-bin/name.cgi HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
            400,
        ),
        (
            b"GET /cgi-bin/name.cgi HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            b"GET /cgi-bin/name.cgi HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            b"GET /cgi-bin/name.cgi HTTP/1.1\r\nHost: a/../b\r\nConnection: close\r\n\r\n",
            400,
        ),
        (b"GET /cgi-bin/name.cgi HTTP/1.0\r\n\r\n", 200),
        (
            b"GET /cgi-bin/name.cgi HTTP/1.1\r\nHost: ok.example:80\r\nConnection: close\r\n\r\n",
            200,
        ),
    ] {
        let raw = server.raw(request);
        assert_eq!(
            raw_status(&raw),
            status,
            "{}",
            String::from_utf8_lossy(request)
        );
    }
    // The absolute form's authority wins over Host, and is what the script is told.
    let raw = server.raw(
        b"GET http://abs.example/cgi-bin/name.cgi HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(raw_status(&raw), 200);
    let body = String::from_utf8_lossy(crate::support::raw_body(&raw)).into_owned();
    assert!(
        body.contains("abs.example") && !body.contains("other"),
        "{body}"
    );
}

#[test]
fn transfer_codings_other_than_chunked_get_501() {
    let site = Site::new();
    site.file(
        "cgi-bin/count.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nwc -c\n",
        0o755,
    );
    let server = site.start();
    for coding in ["gzip, chunked", "identity, chunked", "GZIP,CHUNKED"] {
        let raw = server.raw(
            format!(
                "POST /cgi-bin/count.cgi HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {coding}\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(raw_status(&raw), 501, "{coding}");
    }
    let raw = server.raw(
        b"POST /cgi-bin/count.cgi HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    assert_eq!(raw_status(&raw), 200);
}

#[test]
fn a_request_hyper_refuses_still_gets_an_access_log_line() {
    let site = Site::new();
    let server = site.start();
    assert_eq!(
        raw_status(&server.raw(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")),
        400
    );
    let line = server.wait_for("\"-\" 400");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.0/8 is all this host).
fn connect_from(from: std::net::Ipv4Addr, to: std::net::SocketAddr) -> std::net::TcpStream {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(std::net::SocketAddrV4::new(from, 0)),
    )
    .expect("bind");
    let std::net::SocketAddr::V4(to) = to else {
        panic!("IPv4 expected")
    };
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(to)).expect("connect");
    std::net::TcpStream::from(fd)
}

/// The number of connections waiting in the accept queue of the listener on `port`
/// (`/proc/net/tcp`'s rx_queue of the listening socket).
fn accept_queue(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = fields.get(1)?.rsplit(':').next()?;
        let listening = fields.get(3) == Some(&"0A");
        let queue = fields.get(4)?.split(':').nth(1)?;
        (listening && u16::from_str_radix(local_port, 16).ok()? == port)
            .then(|| u64::from_str_radix(queue, 16).ok())?
    })
}

#[test]
fn one_address_cannot_hold_every_connection_slot() {
    let site =
        Site::new().config("[limits]\nmax_connections = 50\nmax_connections_per_address = 20");
    site.file("a.txt", "a", 0o644);
    let server = site.start();
    let me = std::net::Ipv4Addr::new(127, 0, 0, 1);
    // Twenty half-sent requests from one address hold all it may have...
    let held: Vec<_> = (0..20)
        .map(|_| {
            let mut c = connect_from(me, server.http);
            c.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n")
                .expect("write");
            c
        })
        .collect();
    // ...once the server has taken them all from its accept queue (two workers accept at once:
    // a later connection taken before an earlier one would be let in instead of it)...
    assert!(
        eventually(|| accept_queue(server.http.port()) == Some(0)),
        "the server never took the held connections"
    );
    // ...so the next one from there is closed,
    let mut over = connect_from(me, server.http);
    over.set_read_timeout(Some(crate::support::PATIENCE))
        .expect("timeout");
    let _ = over.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut buf = Vec::new();
    let _ = over.read_to_end(&mut buf);
    assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));
    // ...while another address is served at once.
    let mut other = connect_from(std::net::Ipv4Addr::new(127, 0, 0, 2), server.http);
    other
        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    other
        .set_read_timeout(Some(crate::support::PATIENCE))
        .expect("timeout");
    let mut answer = Vec::new();
    other.read_to_end(&mut answer).expect("read");
    assert_eq!(raw_status(&answer), 200);
    drop(held);
}

#[test]
fn a_chunked_body_that_stops_coming_gets_408() {
    let site = Site::new().config("[limits]\nheader_read_timeout_secs = 1");
    site.file(
        "cgi-bin/count.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nwc -c\n",
        0o755,
    );
    let server = site.start();
    let mut c = server.connect();
    c.write_all(b"POST /cgi-bin/count.cgi HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        .expect("write");
    // ...and nothing more: the server gives up instead of holding the slot for ever.
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    assert_eq!(
        raw_status(&answer),
        408,
        "{}",
        String::from_utf8_lossy(&answer)
    );
}
