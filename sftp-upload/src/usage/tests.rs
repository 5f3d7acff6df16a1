//! Counting a site, and when a user's tally is counted again.

use std::cell::Cell;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::*;

fn open_dir(path: &Path) -> Option<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()
}

#[test]
fn counts_files_and_directories_below_the_root_and_no_link() {
    let site = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("big"), vec![0u8; 100_000]).expect("write");
    std::fs::create_dir_all(site.path().join("a/b")).expect("mkdir");
    std::fs::write(site.path().join("top"), b"12345").expect("write");
    std::fs::write(site.path().join("a/b/deep"), b"123").expect("write");
    std::os::unix::fs::symlink(outside.path(), site.path().join("out")).expect("symlink");
    std::os::unix::fs::symlink("top", site.path().join("again")).expect("symlink");
    let usage = count_usage(site.path()).expect("count");
    assert_eq!(
        usage,
        Usage {
            bytes: 5 + 3 + 2 * DIR_BYTES,
            files: 4
        }
    );
    assert!(count_usage(&site.path().join("nothing")).is_err());
}

#[test]
fn the_first_need_counts_and_a_recount_waits_for_the_interval() {
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::write(site.path().join("a"), b"1234").expect("write");
    let tally = Arc::new(Tally::default());
    let opened = Cell::new(0);
    let refresh = |every| {
        tally.refresh(every, || {
            opened.set(opened.get() + 1);
            open_dir(site.path())
        })
    };
    refresh(Duration::from_secs(3600));
    assert_eq!(tally.usage().map(|u| u.bytes), Some(4));
    // Written by someone else (a script): not seen until the interval has passed.
    std::fs::write(site.path().join("b"), b"123456").expect("write");
    refresh(Duration::from_secs(3600));
    assert_eq!(opened.get(), 1, "no second count within the interval");
    assert_eq!(tally.usage().map(|u| u.bytes), Some(4));
    refresh(Duration::ZERO);
    assert_eq!(opened.get(), 2);
    assert_eq!(
        tally.usage(),
        Some(Usage {
            bytes: 10,
            files: 2
        })
    );
}

#[test]
fn changes_made_during_a_count_are_added_to_its_result() {
    let tally = Tally::default();
    tally.state().running = Some(Change::default());
    tally.change(Change {
        bytes: 100,
        files: 1,
    });
    assert_eq!(tally.usage(), None, "no figure before the first count");
    tally.finish(Usage {
        bytes: 1000,
        files: 10,
    });
    assert_eq!(
        tally.usage(),
        Some(Usage {
            bytes: 1100,
            files: 11
        })
    );
    tally.change(Change {
        bytes: -5000,
        files: -1,
    });
    assert_eq!(
        tally.usage(),
        Some(Usage {
            bytes: 0,
            files: 10
        }),
        "never below zero"
    );
}

#[test]
fn a_recount_on_the_counting_threads_does_not_hold_up_the_session_that_asked() {
    let site = tempfile::tempdir().expect("tempdir");
    let counter = Counter::start(1);
    let tally = Arc::new(Tally::new(counter.clone()));
    tally.refresh(Duration::ZERO, || open_dir(site.path()));
    assert_eq!(
        tally.usage(),
        Some(Usage::default()),
        "the first count is waited for"
    );
    std::fs::write(site.path().join("late"), b"12").expect("write");
    // The only counting thread is busy, so the recount queues behind; the session goes on
    // with the old figure meanwhile.
    let (release, busy) = std::sync::mpsc::channel::<()>();
    counter.run(Box::new(move || {
        let _ = busy.recv_timeout(Duration::from_secs(30));
    }));
    tally.refresh(Duration::ZERO, || open_dir(site.path()));
    assert_eq!(tally.usage(), Some(Usage::default()));
    drop(release);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while tally.usage().map(|u| u.bytes) != Some(2) {
        assert!(
            std::time::Instant::now() < deadline,
            "the recount never ended"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
