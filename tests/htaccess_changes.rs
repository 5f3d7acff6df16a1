//! What the server keeps of `.htaccess` files between requests (inotify-validated, see
//! `server/htaccess/watch.rs`) never outlives a change: every change below, made by another
//! process's file operations (as a shell, a CGI or an FTP daemon would), applies to the very
//! next request, with no pause in between.

use crate::support::Site;

const DENY: &str = "Require all denied\n";
const GRANT: &str = "Require all granted\n";

#[test]
fn every_change_to_a_htaccess_or_its_directories_applies_to_the_next_request() {
    let site = Site::new();
    site.file("a/b/x.txt", "x\n", 0o644);
    site.file("a/y.txt", "y\n", 0o644);
    let server = site.start();
    let status = |path: &str| server.get(path).status;
    // Seen (and kept) without any file.
    for _ in 0..3 {
        assert_eq!(status("/a/b/x.txt"), 200);
    }
    // Created in place (open, write, close).
    site.file("a/b/.htaccess", DENY, 0o644);
    assert_eq!(status("/a/b/x.txt"), 403, "a new file applies at once");
    assert_eq!(status("/a/y.txt"), 200, "only below its directory");
    // Rewritten in place.
    std::fs::write(site.path("a/b/.htaccess"), GRANT).expect("rewrite");
    assert_eq!(status("/a/b/x.txt"), 200, "an edit applies at once");
    std::fs::write(site.path("a/b/.htaccess"), DENY).expect("rewrite");
    assert_eq!(status("/a/b/x.txt"), 403);
    // Removed.
    std::fs::remove_file(site.path("a/b/.htaccess")).expect("rm");
    assert_eq!(status("/a/b/x.txt"), 200, "a removal applies at once");
    // Replaced by an atomic rename (as SFTP clients and editors save).
    site.file("a/b/.htaccess.tmp", DENY, 0o644);
    std::fs::rename(site.path("a/b/.htaccess.tmp"), site.path("a/b/.htaccess")).expect("mv");
    assert_eq!(
        status("/a/b/x.txt"),
        403,
        "a renamed-in file applies at once"
    );
    // A directory of the path moved away and another made in its place, without a file.
    std::fs::rename(site.path("a/b"), site.path("a/b.old")).expect("mv");
    site.file("a/b/x.txt", "new x\n", 0o644);
    assert_eq!(
        status("/a/b/x.txt"),
        200,
        "the new directory has no .htaccess"
    );
    assert_eq!(status("/a/b.old/x.txt"), 403, "the moved one keeps its own");
    // And moved back over it.
    std::fs::remove_dir_all(site.path("a/b")).expect("rm -r");
    std::fs::rename(site.path("a/b.old"), site.path("a/b")).expect("mv");
    assert_eq!(
        status("/a/b/x.txt"),
        403,
        "the directory moved back brings its file"
    );
    // A file higher up, while the deeper levels are kept.
    std::fs::remove_file(site.path("a/b/.htaccess")).expect("rm");
    assert_eq!(status("/a/b/x.txt"), 200);
    site.file("a/.htaccess", DENY, 0o644);
    assert_eq!(
        status("/a/b/x.txt"),
        403,
        "a parent's new file applies at once"
    );
    assert_eq!(status("/a/y.txt"), 403);
    // The parent renamed: its file goes with it.
    std::fs::rename(site.path("a"), site.path("c")).expect("mv");
    assert_eq!(status("/a/b/x.txt"), 404);
    assert_eq!(status("/c/b/x.txt"), 403);
    std::fs::remove_file(site.path("c/.htaccess")).expect("rm");
    assert_eq!(
        status("/c/b/x.txt"),
        200,
        "the moved directory is looked at afresh"
    );
    // A file with path info after it becomes a directory with a file.
    site.file("p", "plain\n", 0o644);
    assert_eq!(status("/p/x.txt"), 404);
    std::fs::remove_file(site.path("p")).expect("rm");
    site.file("p/x.txt", "x\n", 0o644);
    site.file("p/.htaccess", DENY, 0o644);
    assert_eq!(
        status("/p/x.txt"),
        403,
        "a file replaced by a directory is looked at afresh"
    );
}
