//! Per-customer cgroups: memory, processes and CPU for all of a customer's scripts together.
//!
//! By hand with `std::fs`, not `cgroups-rs`: what is needed is a directory per customer, three
//! limit files, a `cgroup.procs` held open per hierarchy and two counters; the crate's pre-1.0
//! API has broken between releases and does not give the descriptor a vfork child writes to.
//!
//! Both versions: v2 (one unified hierarchy: most distributions today) and v1 (separate
//! `memory`, `pids` and `cpu` hierarchies, as on this project's build machines, whose v2
//! hierarchy is empty). The server makes its own directory, `yadokari.<pid>`, beside itself in
//! each hierarchy (under its own cgroup, so a service manager's accounting and limits still
//! cover its customers), a directory per customer inside, and removes them when it stops.
//!
//! A script joins its customer's cgroup in the child, before `execve`, by writing `0` to the
//! `cgroup.procs` descriptors opened here (one write per hierarchy: one on v2, three on v1).
//! The write must come before the child drops root: v1 checks the writer at write time, v2 at
//! open (so the descriptor is opened by root and close-on-exec, and never reaches a script).

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::Shell;

/// Which cgroup version the host runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// One unified hierarchy.
    V2,
    /// A hierarchy per controller.
    V1,
}

/// The v1 controllers a customer's cgroup lives in.
const V1_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// The server's own place in the hierarchies: where customers' cgroups are made.
pub struct Root {
    /// v1 or v2.
    pub version: Version,
    /// The server's directory in each hierarchy it uses (v2: one; v1: memory, pids, cpu).
    dirs: Vec<PathBuf>,
}

/// One customer's cgroup.
pub struct Group {
    version: Version,
    /// Its directory in each hierarchy, in `Root::dirs`' order.
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each, open for writing.
    procs: Vec<OwnedFd>,
    /// The limits written last.
    limits: std::sync::Mutex<Shell>,
    /// The memory and process-limit event counts seen last (see [`Group::stopped`]).
    seen_oom: AtomicU64,
    seen_max: AtomicU64,
}

/// Why a customer's script was stopped by its cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The memory limit (bytes): the kernel's OOM killer ended a process.
    Memory(u64),
    /// The process limit: a `fork` was refused.
    Processes(u64),
}

impl Root {
    /// Finds the hierarchies and makes the server's directory in each; `Err` says why
    /// there will be no per-customer limits.
    pub fn new() -> Result<Root, String> {
        let (version, mounts, own) = detect()?;
        let name = format!("yadokari.{}", std::process::id());
        if version == Version::V2 {
            let unified = v2_mount(&mounts).ok_or("cgroups: the v2 hierarchy went away")?;
            return v2_root(&unified, &own, &name);
        }
        let mut dirs = Vec::new();
        for controller in V1_CONTROLLERS {
            let mount = v1_mount(&mounts, controller)
                .ok_or_else(|| format!("cgroups: no v1 `{controller}` hierarchy is mounted"))?;
            let path = own_path(&own, |list| list.split(',').any(|c| c == controller));
            let dir = mount.join(path.trim_start_matches('/')).join(&name);
            make_dir(&dir)?;
            dirs.push(dir);
        }
        clean_stale(&dirs);
        Ok(Root {
            version: Version::V1,
            dirs,
        })
    }

    /// What the banner says: `cgroup-v1(memory,pids,cpu)`.
    pub fn describe(&self) -> String {
        let v = if self.version == Version::V2 { 2 } else { 1 };
        format!("cgroup-v{v}(memory,pids,cpu)")
    }

    /// Makes (or takes over) customer `name`'s cgroup with `limits`.
    pub fn group(&self, name: &str, limits: &Shell) -> io::Result<Group> {
        let dirs: Vec<PathBuf> = self.dirs.iter().map(|d| d.join(name)).collect();
        let mut procs = Vec::with_capacity(dirs.len());
        for dir in &dirs {
            match std::fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            let file = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(dir.join("cgroup.procs"))?;
            procs.push(OwnedFd::from(file));
        }
        let group = Group {
            version: self.version,
            dirs,
            procs,
            limits: std::sync::Mutex::new(*limits),
            seen_oom: AtomicU64::new(0),
            seen_max: AtomicU64::new(0),
        };
        group.write_limits(limits)?;
        group
            .seen_oom
            .store(group.count(Counter::Oom), Ordering::Relaxed);
        group
            .seen_max
            .store(group.count(Counter::Max), Ordering::Relaxed);
        Ok(group)
    }

    /// The customers that have a cgroup directory now.
    pub fn names(&self) -> Vec<String> {
        std::fs::read_dir(&self.dirs[0])
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Ends customer `name`'s scripts and removes their cgroup (a customer removed).
    pub fn remove_group(&self, name: &str) {
        let dirs: Vec<PathBuf> = self.dirs.iter().map(|d| d.join(name)).collect();
        empty_and_remove(self.version, &dirs);
    }

    /// Ends every customer's scripts and removes every cgroup the server made (it stops).
    pub fn remove(&self) {
        for name in self.names() {
            self.remove_group(&name);
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The cgroup version this host runs (v2 when its unified hierarchy has the memory and pids
/// controllers, v1 when those hierarchies are mounted), with `/proc/self/mountinfo` and
/// `/proc/self/cgroup` as read.
pub fn detect() -> Result<(Version, String, String), String> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cgroups: cannot read /proc/self/mountinfo: {e}"))?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cgroups: cannot read /proc/self/cgroup: {e}"))?;
    if let Some(unified) = v2_mount(&mounts) {
        let controllers =
            std::fs::read_to_string(unified.join("cgroup.controllers")).unwrap_or_default();
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        if has("memory") && has("pids") {
            return Ok((Version::V2, mounts, own));
        }
    }
    if V1_CONTROLLERS
        .iter()
        .all(|c| v1_mount(&mounts, c).is_some())
    {
        return Ok((Version::V1, mounts, own));
    }
    Err("cgroups: no v2 hierarchy with the memory and pids controllers, and no v1 memory, pids and cpu hierarchies".into())
}

/// Which event counter.
#[derive(Clone, Copy)]
enum Counter {
    Oom,
    Max,
}

impl Group {
    /// The `cgroup.procs` descriptors a child writes itself into.
    pub fn procs(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.procs.iter().map(|f| f.as_raw_fd())
    }

    /// Writes new limits (a reload); only what changed is written.
    pub fn set_limits(&self, limits: &Shell) -> io::Result<()> {
        let same = match self.limits.lock() {
            Ok(l) => *l == *limits,
            Err(_) => false,
        };
        if same {
            return Ok(());
        }
        self.write_limits(limits)?;
        if let Ok(mut l) = self.limits.lock() {
            *l = *limits;
        }
        Ok(())
    }

    fn write_limits(&self, limits: &Shell) -> io::Result<()> {
        let max = |n: u64| {
            if n == 0 {
                "max".to_string()
            } else {
                n.to_string()
            }
        };
        match self.version {
            Version::V2 => {
                let dir = &self.dirs[0];
                write(&dir.join("memory.max"), &max(limits.memory_bytes))?;
                // Swap would let a script over its limit run on, slowly, for everyone.
                let _ = write(&dir.join("memory.swap.max"), "0");
                write(&dir.join("pids.max"), &max(limits.processes))?;
                write(&dir.join("cpu.weight"), &limits.cpu_weight.to_string())?;
            }
            Version::V1 => {
                let (memory, pids, cpu) = (&self.dirs[0], &self.dirs[1], &self.dirs[2]);
                let bytes = if limits.memory_bytes == 0 {
                    "-1".to_string()
                } else {
                    limits.memory_bytes.to_string()
                };
                // memory + swap must never be below memory alone: lowering goes memory first,
                // raising memsw first; one of the two orders works, so try both.
                let memsw = memory.join("memory.memsw.limit_in_bytes");
                let limit = memory.join("memory.limit_in_bytes");
                if write(&limit, &bytes).is_err() {
                    let _ = write(&memsw, &bytes);
                    write(&limit, &bytes)?;
                }
                if memsw.exists() {
                    write(&memsw, &bytes)?;
                }
                write(&pids.join("pids.max"), &max(limits.processes))?;
                let shares = (limits.cpu_weight * 1024 / 100).max(2);
                write(&cpu.join("cpu.shares"), &shares.to_string())?;
            }
        }
        Ok(())
    }

    /// After a script failed: whether its cgroup stopped it (the memory limit's OOM kill, or a
    /// refused fork) since the last time this was asked. Reads two small files, only on
    /// failure: a request that succeeds costs nothing here.
    pub fn stopped(&self) -> Option<Stop> {
        let limits = self.limits.lock().map(|l| *l).ok()?;
        let oom = self.count(Counter::Oom);
        if oom > self.seen_oom.swap(oom, Ordering::Relaxed) {
            return Some(Stop::Memory(limits.memory_bytes));
        }
        let max = self.count(Counter::Max);
        if max > self.seen_max.swap(max, Ordering::Relaxed) {
            return Some(Stop::Processes(limits.processes));
        }
        None
    }

    /// An event counter: OOM kills (v2 `memory.events`, v1 `memory.oom_control`) or refused
    /// forks (`pids.events`, both versions).
    fn count(&self, counter: Counter) -> u64 {
        let (file, key) = match (self.version, counter) {
            (Version::V2, Counter::Oom) => (self.dirs[0].join("memory.events"), "oom_kill"),
            (Version::V1, Counter::Oom) => (self.dirs[0].join("memory.oom_control"), "oom_kill"),
            (Version::V2, Counter::Max) => (self.dirs[0].join("pids.events"), "max"),
            (Version::V1, Counter::Max) => (self.dirs[1].join("pids.events"), "max"),
        };
        std::fs::read_to_string(file)
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == key).then(|| v.trim().parse().ok())?
                })
            })
            .unwrap_or(0)
    }
}

/// Ends every process in a customer's cgroup (`dirs`, one per hierarchy) and removes it.
/// Bounded: gives up after about a second, leaving an empty directory at worst.
fn empty_and_remove(version: Version, dirs: &[PathBuf]) {
    if !dirs.iter().any(|d| d.exists()) {
        return;
    }
    match version {
        Version::V2 => {
            let _ = write(&dirs[0].join("cgroup.kill"), "1");
        }
        Version::V1 => {
            // No fork succeeds from now on, so the kill below cannot be outrun.
            let _ = write(&dirs[1].join("pids.max"), "0");
        }
    }
    for _ in 0..100 {
        let mut left = false;
        for dir in dirs {
            let pids = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in pids.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                left = true;
                // SAFETY: kill(2) of a process in this customer's cgroup, which only the
                // server's scripts join.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if !left && dirs.iter().all(|d| remove_dir(d)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// `rmdir`, true when it is gone.
fn remove_dir(dir: &Path) -> bool {
    match std::fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// The v2 set-up: the server moves into a leaf of its own (a cgroup with controllers enabled
/// for its children may hold no process), the controllers are enabled below, and the
/// customers' cgroups go beside that leaf.
fn v2_root(unified: &Path, own: &str, name: &str) -> Result<Root, String> {
    let path = own_path(own, |list| list.is_empty());
    let base = unified.join(path.trim_start_matches('/'));
    let leaf = base.join(format!("{name}.server"));
    let dir = base.join(name);
    let why = |what: &str, e: io::Error| {
        format!(
            "cgroups: {what} in {} failed ({e}); the server needs its cgroup delegated (Delegate=yes in a systemd unit)",
            base.display()
        )
    };
    make_dir(&leaf)?;
    write(&leaf.join("cgroup.procs"), &std::process::id().to_string())
        .map_err(|e| why("moving the server into its own leaf", e))?;
    let enable = "+memory +pids +cpu";
    write(&base.join("cgroup.subtree_control"), enable)
        .map_err(|e| why("enabling memory, pids and cpu", e))?;
    make_dir(&dir)?;
    write(&dir.join("cgroup.subtree_control"), enable)
        .map_err(|e| why("enabling memory, pids and cpu", e))?;
    Ok(Root {
        version: Version::V2,
        dirs: vec![dir],
    })
}

/// The unified (v2) mount point, if there is one.
fn v2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// The mount point of the v1 hierarchy that has `controller`.
fn v1_mount(mountinfo: &str, controller: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut fields = right.split_whitespace();
        if fields.next()? != "cgroup" {
            return None;
        }
        let options = fields.nth(1)?;
        if !options.split(',').any(|o| o == controller) {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// This process's path in the hierarchy whose controller list (`/proc/self/cgroup`'s second
/// field) matches.
fn own_path(own: &str, matches: impl Fn(&str) -> bool) -> String {
    own.lines()
        .find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let list = parts.next()?;
            let path = parts.next()?;
            matches(list).then(|| path.to_string())
        })
        .unwrap_or_else(|| "/".into())
}

fn make_dir(dir: &Path) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cgroups: cannot create {}: {e}", dir.display())),
    }
}

/// Removes what earlier servers that did not stop cleanly left beside ours: `yadokari.<pid>`
/// directories whose process is gone (empty ones only: `rmdir` refuses a cgroup with
/// processes).
fn clean_stale(dirs: &[PathBuf]) {
    for dir in dirs {
        let Some(parent) = dir.parent() else { continue };
        let Ok(entries) = std::fs::read_dir(parent) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("yadokari."))
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            // SAFETY: signal 0 only asks whether the process exists.
            let alive = unsafe { libc::kill(pid, 0) } == 0
                || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
            if alive {
                continue;
            }
            if let Ok(customers) = std::fs::read_dir(entry.path()) {
                for c in customers.filter_map(Result::ok) {
                    if c.path().is_dir() {
                        let _ = std::fs::remove_dir(c.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

/// Writes `text` to a cgroup file in one `write`.
fn write(path: &Path, text: &str) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.write_all(text.as_bytes())
}
