//! In-process protocol tests: packets in, packets out, on a temporary site.

use std::time::Duration;

use bytes::Bytes;

use super::extensions::ANNOUNCED;
use super::{Action, Sftp};
use crate::files::SiteFiles;
use crate::quota::{Quota, QuotaLimits};
use crate::wire::{Attrs, Packet, Reader, StatusCode, fxp, open_flags};

fn session() -> (tempfile::TempDir, Sftp) {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = SiteFiles::open(dir.path(), "t", false).expect("site");
    let quota = Quota::new(QuotaLimits::default(), Default::default(), Duration::MAX);
    (dir, Sftp::new(files, "t", handles(8), quota))
}

/// A request packet body: type, id, then the fields.
fn req(kind: u8, id: u32, fields: &[&dyn Fn(&mut Packet)]) -> Vec<u8> {
    let mut p = Packet::new(kind, id);
    for f in fields {
        f(&mut p);
    }
    p.finish()[4..].to_vec()
}

/// A request whose only field is one string (a path or a handle).
fn string_req(kind: u8, id: u32, value: &[u8]) -> Vec<u8> {
    req(
        kind,
        id,
        &[&|p| {
            p.string(value);
        }],
    )
}

fn reply(s: &mut Sftp, packet: &[u8]) -> Bytes {
    match s.handle(packet) {
        Action::Reply(b) => b,
        Action::Read(job) => job.run(),
    }
}

/// (type, id, rest) of a reply.
fn parse(b: &Bytes) -> (u8, u32, Vec<u8>) {
    let mut r = Reader::new(&b[4..]);
    let kind = r.u8().expect("type");
    let id = r.u32().expect("id");
    (kind, id, b[9..].to_vec())
}

fn status_code(b: &Bytes) -> u32 {
    let (kind, _, rest) = parse(b);
    assert_eq!(kind, fxp::STATUS, "{b:?}");
    u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]])
}

fn open(s: &mut Sftp, id: u32, path: &[u8], flags: u32) -> Vec<u8> {
    let b = reply(
        s,
        &req(
            fxp::OPEN,
            id,
            &[&|p| {
                p.string(path).u32(flags).attrs(&Attrs::default());
            }],
        ),
    );
    let (kind, got, rest) = parse(&b);
    assert_eq!((kind, got), (fxp::HANDLE, id), "{b:?}");
    Reader::new(&rest).string().expect("handle").to_vec()
}

#[test]
fn write_read_eof_and_close() {
    let (dir, mut s) = session();
    let h = open(
        &mut s,
        1,
        b"/f.txt",
        open_flags::WRITE | open_flags::CREAT | open_flags::TRUNC,
    );
    let b = reply(
        &mut s,
        &req(
            fxp::WRITE,
            2,
            &[&|p| {
                p.string(&h).u64(0).string(b"hello");
            }],
        ),
    );
    assert_eq!(status_code(&b), StatusCode::Ok as u32);
    assert!(
        !dir.path().join("f.txt").exists(),
        "not in place before close"
    );
    let b = reply(&mut s, &string_req(fxp::CLOSE, 3, &h));
    assert_eq!(status_code(&b), StatusCode::Ok as u32);
    assert_eq!(
        std::fs::read(dir.path().join("f.txt")).expect("read"),
        b"hello"
    );

    let h = open(&mut s, 4, b"f.txt", open_flags::READ);
    let b = reply(
        &mut s,
        &req(
            fxp::READ,
            5,
            &[&|p| {
                p.string(&h).u64(1).u32(100);
            }],
        ),
    );
    let (kind, id, rest) = parse(&b);
    assert_eq!((kind, id), (fxp::DATA, 5));
    assert_eq!(Reader::new(&rest).string().expect("data"), b"ello");
    let b = reply(
        &mut s,
        &req(
            fxp::READ,
            6,
            &[&|p| {
                p.string(&h).u64(5).u32(100);
            }],
        ),
    );
    assert_eq!(status_code(&b), StatusCode::Eof as u32);
}

#[test]
fn readdir_comes_in_batches_then_eof() {
    let (dir, mut s) = session();
    for i in 0..250 {
        std::fs::write(dir.path().join(format!("f{i}")), b"x").expect("write");
    }
    let b = reply(&mut s, &string_req(fxp::OPENDIR, 1, b"/"));
    let (_, _, rest) = parse(&b);
    let h = Reader::new(&rest).string().expect("handle").to_vec();
    let mut total = 0;
    let mut batches = 0;
    loop {
        let b = reply(&mut s, &string_req(fxp::READDIR, 2, &h));
        let (kind, id, rest) = parse(&b);
        assert_eq!(id, 2);
        if kind == fxp::STATUS {
            assert_eq!(status_code(&b), StatusCode::Eof as u32);
            break;
        }
        let mut r = Reader::new(&rest);
        let n = r.u32().expect("count");
        for _ in 0..n {
            let name = r.string().expect("name").to_vec();
            let long = r.string().expect("longname");
            r.attrs().expect("attrs");
            assert!(long.ends_with(&name));
            assert!(
                long.starts_with(b"-rw-"),
                "{}",
                String::from_utf8_lossy(long)
            );
        }
        total += n;
        batches += 1;
    }
    assert_eq!(total, 250);
    assert!(batches >= 3, "{batches}");
}

#[test]
fn refusals_and_unknowns_answer_with_their_own_id() {
    let (_dir, mut s) = session();
    let b = reply(
        &mut s,
        &req(
            fxp::SYMLINK,
            41,
            &[&|p| {
                p.string(b"/etc/passwd").string(b"pw");
            }],
        ),
    );
    assert_eq!(parse(&b).1, 41);
    assert_eq!(status_code(&b), StatusCode::PermissionDenied as u32);
    let b = reply(
        &mut s,
        &string_req(fxp::EXTENDED, 42, b"no-such@example.com"),
    );
    assert_eq!(parse(&b).1, 42);
    assert_eq!(status_code(&b), StatusCode::OpUnsupported as u32);
    let b = reply(&mut s, &string_req(fxp::STAT, 43, b"/missing"));
    assert_eq!(status_code(&b), StatusCode::NoSuchFile as u32);
    let b = reply(&mut s, &req(99, 44, &[]));
    assert_eq!(
        (parse(&b).1, status_code(&b)),
        (44, StatusCode::OpUnsupported as u32)
    );
    // A field cut short: BAD_MESSAGE, still with the request's id.
    let mut short = req(
        fxp::OPEN,
        45,
        &[&|p| {
            p.string(b"/x");
        }],
    );
    short.truncate(short.len() - 1);
    let b = reply(&mut s, &short);
    assert_eq!(
        (parse(&b).1, status_code(&b)),
        (45, StatusCode::BadMessage as u32)
    );
}

#[test]
fn realpath_clamps_and_handles_are_capped() {
    let (_dir, mut s) = session();
    let b = reply(&mut s, &string_req(fxp::REALPATH, 7, b"../../a/./b/.."));
    let (kind, _, rest) = parse(&b);
    assert_eq!(kind, fxp::NAME);
    let mut r = Reader::new(&rest);
    assert_eq!(r.u32().expect("count"), 1);
    assert_eq!(r.string().expect("name"), b"/a");
    for i in 0..8 {
        let b = reply(&mut s, &string_req(fxp::OPENDIR, i, b"/"));
        assert_eq!(parse(&b).0, fxp::HANDLE);
    }
    let b = reply(&mut s, &string_req(fxp::OPENDIR, 9, b"/"));
    assert_eq!(status_code(&b), StatusCode::Failure as u32);
}

#[test]
fn version_lists_the_extensions() {
    let v = Sftp::version();
    for (name, _) in ANNOUNCED {
        assert!(v.windows(name.len()).any(|w| w == *name));
    }
}

#[test]
fn quota_counts_writes_truncation_and_replacing_renames() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("old.txt"), b"12345").expect("write");
    let files = SiteFiles::open(dir.path(), "t", false).expect("site");
    let limits = QuotaLimits {
        bytes: Some(12),
        files: None,
    };
    let mut s = Sftp::new(
        files,
        "t",
        handles(8),
        Quota::new(limits, Default::default(), Duration::MAX),
    );
    let h = open(
        &mut s,
        1,
        b"/new.txt",
        open_flags::WRITE | open_flags::CREAT | open_flags::TRUNC,
    );
    let write = |s: &mut Sftp, id, data: &'static [u8]| {
        let h = h.clone();
        status_code(&reply(
            s,
            &req(
                fxp::WRITE,
                id,
                &[&|p| {
                    p.string(&h).u64(0).string(data);
                }],
            ),
        ))
    };
    assert_eq!(
        write(&mut s, 2, b"1234567"),
        StatusCode::Ok as u32,
        "5 + 7 = 12 fits"
    );
    assert_eq!(
        write(&mut s, 3, b"12345678"),
        StatusCode::Failure as u32,
        "13 does not"
    );
    let b = reply(&mut s, &string_req(fxp::CLOSE, 4, &h));
    assert_eq!(
        status_code(&b),
        StatusCode::Failure as u32,
        "a failed upload is not put in place"
    );
    assert!(!dir.path().join("new.txt").exists());
    // Growing old.txt past the limit by truncation is refused; replacing it by rename frees it.
    let b = reply(
        &mut s,
        &req(
            fxp::SETSTAT,
            5,
            &[&|p| {
                p.string(b"old.txt").attrs(&Attrs {
                    size: Some(100),
                    ..Attrs::default()
                });
            }],
        ),
    );
    assert_eq!(status_code(&b), StatusCode::Failure as u32);
    assert_eq!(
        std::fs::metadata(dir.path().join("old.txt"))
            .expect("stat")
            .len(),
        5
    );
}

/// A handle table of `max` with a budget that never runs out.
fn handles(max: usize) -> crate::handles::Handles {
    let budget = crate::handles::Budget::new(Default::default(), usize::MAX);
    crate::handles::Handles::new(max, budget)
}
