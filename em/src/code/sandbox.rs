//! Sandboxed execution of untrusted Python programs (model output and its tests).
//!
//! Each run is a separate `python3 -I -B` process in an empty temporary folder, started
//! with `clone` into new PID, network, mount and IPC namespaces when the system allows:
//! - no network (a fresh network namespace has only a down loopback);
//! - every mount read-only except the working folder;
//! - the program is PID 1 of its own PID namespace: it cannot see or signal any outside
//!   process, and when it exits or is killed the kernel kills every process it started;
//! - as root it runs as a fresh unprivileged uid/gid (one per run, so `RLIMIT_NPROC`
//!   counts only its own processes); as an ordinary user it runs in a new user
//!   namespace with the caller's ids mapped to themselves (no capabilities; the kernel
//!   counts `RLIMIT_NPROC` per user namespace);
//! - limits (soft = hard): CPU time, address space, file size, processes, open files,
//!   no core files; a wall-clock timeout kills the whole namespace;
//! - stdin and stdout are /dev/null, stderr's last 64 KiB are kept, the environment is
//!   four fixed variables (no secrets inherited), no descriptor leaks in.
//!
//! Without namespaces (some containers), root still drops to a fresh uid (and kills
//! every process of that uid afterwards), but the network is not isolated and the
//! file system is not read-only: [`Isolation`] says which, and callers report it. An
//! ordinary user without user namespaces gets an error: the program would run as the
//! caller and could signal the evaluator.
//!
//! The verdict comes from the driver (`driver.py`) on descriptor 3, tagged with a
//! per-run nonce: the program's own output cannot pass for it, though a program written
//! to find the nonce in the driver's memory could forge a pass. The sandbox protects
//! the machine; it does not make the score adversarially robust.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[cfg(target_os = "linux")]
use super::isolate::{child_main, ChildPlan, SETUP_FAILED};
use crate::error::{Error, Result};

const DRIVER: &str = include_str!("driver.py");

/// Per-run limits.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Limits {
    /// Wall-clock time before the run is killed (and reported as a timeout).
    pub wall: Duration,
    /// Address space per process, bytes.
    pub memory_bytes: u64,
    /// Largest file a process may write, bytes.
    pub file_bytes: u64,
    /// Processes (and threads) the program may have at once.
    pub processes: u64,
    /// Open descriptors per process.
    pub open_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall: Duration::from_secs(10),
            memory_bytes: 2 << 30,
            file_bytes: 16 << 20,
            processes: 16,
            open_files: 256,
        }
    }
}

/// How one run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The tests ran to the end.
    Passed,
    /// An assertion failed.
    Failed,
    /// Another exception, a syntax error, or an exit before the tests finished.
    Error,
    /// Killed at the wall-clock limit.
    Timeout,
    /// Killed by a signal (a crash, the CPU-time limit, the out-of-memory killer).
    Crashed,
}

impl Status {
    /// The lower-case name used in results files.
    pub fn name(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Error => "error",
            Status::Timeout => "timeout",
            Status::Crashed => "crashed",
        }
    }
}

/// One run's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// How it ended.
    pub status: Status,
    /// The failed assertion's or exception's last line, the signal's name, or why the
    /// tests did not finish; empty when passed.
    pub detail: String,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// What isolation this system allows, probed once per process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Isolation {
    /// PID, network, mount and IPC namespaces (no network, read-only file system).
    pub namespaces: bool,
    /// The program runs as a fresh unprivileged uid (the evaluator runs as root).
    pub dropped_uid: bool,
}

impl Isolation {
    /// One line for logs and results files.
    pub fn describe(&self) -> String {
        match (self.namespaces, self.dropped_uid) {
            (true, true) => "namespaces (pid, net, mount, ipc), read-only file system, fresh uid".into(),
            (true, false) => "user + pid, net, mount, ipc namespaces, read-only file system".into(),
            (false, _) => "fresh uid only: network NOT isolated, file system writable where that uid may write".into(),
        }
    }
}

/// Runs programs under [`Limits`] with the best [`Isolation`] the system allows.
#[derive(Clone, Debug)]
pub struct Sandbox {
    limits: Limits,
    isolation: Isolation,
    python: PathBuf,
}

static PROBED: OnceLock<std::result::Result<(Isolation, PathBuf), String>> = OnceLock::new();
static RUNS: AtomicU64 = AtomicU64::new(0);

impl Sandbox {
    /// A sandbox with `limits`; probes the system's isolation on first use (a trivial
    /// program with full isolation, then the fallback).
    pub fn new(limits: Limits) -> Result<Sandbox> {
        if limits.wall.is_zero() || limits.memory_bytes == 0 || limits.processes == 0 {
            return Err(Error::invalid("sandbox limits: the timeout, memory and process limits must be positive"));
        }
        let (isolation, python) = PROBED.get_or_init(probe).clone().map_err(Error::Sandbox)?;
        Ok(Sandbox { limits, isolation, python })
    }

    /// The isolation every run gets.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// The limits every run gets.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Run `source` (a whole Python program: candidate, tests and the call that runs
    /// them) and report how it ended.
    pub fn run(&self, source: &str) -> Result<Outcome> {
        run_isolated(&self.python, source, &self.limits, self.isolation)
    }
}

fn probe() -> std::result::Result<(Isolation, PathBuf), String> {
    let root = unsafe { libc::geteuid() } == 0;
    let python = sandbox_python(root).ok_or(
        "no python3 the sandbox can run: code evaluation needs one on PATH (as root, outside folders only root may \
         enter, such as /root: e.g. /usr/bin/python3), or ENTMIN_SANDBOX_PYTHON",
    )?;
    let full = Isolation { namespaces: true, dropped_uid: root };
    let limits = Limits::default();
    let first = match run_isolated(&python, "pass\n", &limits, full) {
        Ok(o) if o.status == Status::Passed => return Ok((full, python)),
        Ok(o) => format!("{}: {}", o.status.name(), o.detail),
        Err(e) => e.to_string(),
    };
    if !root {
        return Err(format!(
            "cannot isolate programs: namespaces are unavailable to this user ({first}). Run as root, or allow \
             unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 / \
             user.max_user_namespaces > 0)"
        ));
    }
    let fallback = Isolation { namespaces: false, dropped_uid: true };
    match run_isolated(&python, "pass\n", &limits, fallback) {
        Ok(o) if o.status == Status::Passed => Ok((fallback, python)),
        Ok(o) => Err(format!("cannot run programs: {first}; without namespaces: {}: {}", o.status.name(), o.detail)),
        Err(e) => Err(format!("cannot run programs: {first}; without namespaces: {e}")),
    }
}

/// The interpreter programs run with: `ENTMIN_SANDBOX_PYTHON`, else the real executable
/// behind PATH's `python3` (shims such as pyenv's resolved through `sys.executable`),
/// else any `python3` on PATH, else /usr/bin/python3 — the first that the sandbox's
/// user can execute (as root: a fresh uid, so every folder on the way must be open to
/// others).
fn sandbox_python(root: bool) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        let Ok(real) = std::fs::canonicalize(p) else { return false };
        if !real.is_file() {
            return false;
        }
        !root || real.ancestors().all(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
    };
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("ENTMIN_SANDBOX_PYTHON") {
        candidates.push(p.into());
    }
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|d| d.join("python3")).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    if let Some(first) = on_path.first() {
        let out = std::process::Command::new(first).args(["-I", "-c", "import sys; print(sys.executable)"]).output();
        if let Some(out) = out.ok().filter(|o| o.status.success()) {
            candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
    }
    candidates.extend(on_path);
    candidates.push("/usr/bin/python3".into());
    candidates.into_iter().find(|p| !p.as_os_str().is_empty() && runnable(p))
}

/// A fresh uid/gid per run (root only), far from real accounts' ids.
fn fresh_id() -> u32 {
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() as u64;
    (1_000_000_000 + (pid * 65_536 + run % 65_536) % 2_000_000_000) as u32
}

fn nonce() -> String {
    let mut bytes = [0u8; 16];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes)).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        bytes[..16].copy_from_slice(&(t.as_nanos() ^ RUNS.load(Ordering::Relaxed) as u128).to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Sandbox(format!("{s:?} holds a NUL byte")))
}

fn os_error(what: &str) -> Error {
    Error::Sandbox(format!("{what}: {}", std::io::Error::last_os_error()))
}

fn run_isolated(python: &Path, source: &str, limits: &Limits, isolation: Isolation) -> Result<Outcome> {
    let workdir = std::env::temp_dir().join(format!(
        "entmin-sandbox-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&workdir).map_err(|e| Error::io("creating", &workdir, e))?;
    let result = run_in(&workdir, python, source, limits, isolation);
    remove_tree(&workdir);
    result
}

#[cfg(target_os = "linux")]
fn run_in(workdir: &Path, python: &Path, source: &str, limits: &Limits, isolation: Isolation) -> Result<Outcome> {
    use std::os::unix::fs::PermissionsExt;
    let write = |name: &str, text: &str| {
        let p = workdir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io("writing", &p, e))
    };
    write("program.py", source)?;
    write("driver.py", DRIVER)?;
    let drop_to = isolation.dropped_uid.then(fresh_id);
    if let Some(id) = drop_to {
        let dir = cstring(&workdir.to_string_lossy())?;
        if unsafe { libc::chown(dir.as_ptr(), id, id) } != 0 {
            return Err(os_error(&format!("giving {} to the sandbox uid", workdir.display())));
        }
    }
    std::fs::set_permissions(workdir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("setting permissions of", workdir, e))?;

    let nonce = nonce();
    let dir = workdir.to_string_lossy();
    let strings = vec![
        cstring(&python.to_string_lossy())?,
        cstring("-I")?,
        cstring("-B")?,
        cstring("driver.py")?,
        cstring("PATH=/usr/local/bin:/usr/bin:/bin")?,
        cstring(&format!("HOME={dir}"))?,
        cstring(&format!("TMPDIR={dir}"))?,
        cstring("LANG=C.UTF-8")?,
        cstring(&format!("ENTMIN_NONCE={nonce}"))?,
    ];
    let ptrs: Vec<_> = strings.iter().map(|s| s.as_ptr()).collect();
    let mut argv = ptrs[..4].to_vec();
    argv.push(std::ptr::null());
    let mut envp = ptrs[4..].to_vec();
    envp.push(std::ptr::null());

    let (stderr_read, stderr_write) = pipe()?;
    let (verdict_read, verdict_write) = pipe()?;
    let user_namespace = if isolation.namespaces && drop_to.is_none() {
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Some((cstring(&format!("{uid} {uid} 1"))?, cstring(&format!("{gid} {gid} 1"))?))
    } else {
        None
    };
    let cpu_secs = limits.wall.as_secs() + 2;
    let plan = ChildPlan {
        namespaces: isolation.namespaces,
        read_only_fs: isolation.namespaces,
        user_namespace,
        drop_to: drop_to.map(|id| (id, id)),
        workdir: cstring(&dir)?,
        program: strings[0].clone(),
        argv,
        envp,
        _strings: strings,
        stderr_fd: stderr_write.0,
        verdict_fd: verdict_write.0,
        limits: vec![
            (libc::RLIMIT_CPU, cpu_secs),
            (libc::RLIMIT_AS, limits.memory_bytes),
            (libc::RLIMIT_FSIZE, limits.file_bytes),
            (libc::RLIMIT_NPROC, limits.processes),
            (libc::RLIMIT_NOFILE, limits.open_files),
            (libc::RLIMIT_CORE, 0),
        ],
    };
    let mut flags = libc::SIGCHLD;
    if plan.namespaces {
        flags |= libc::CLONE_NEWPID | libc::CLONE_NEWNET | libc::CLONE_NEWNS | libc::CLONE_NEWIPC;
        if plan.user_namespace.is_some() {
            flags |= libc::CLONE_NEWUSER;
        }
    }
    let mut stack = vec![0u8; 256 << 10];
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
    let start = Instant::now();
    // SAFETY: without CLONE_VM the child gets a copy of this address space, in which
    // `plan` and `stack` stay valid; child_main only makes system calls.
    let pid = unsafe {
        libc::clone(child_main, top as *mut libc::c_void, flags, &plan as *const ChildPlan as *mut libc::c_void)
    };
    if pid < 0 {
        return Err(os_error("starting the sandboxed process (clone)"));
    }
    drop((stderr_write, verdict_write));
    let waited = wait(pid, &[&stderr_read, &verdict_read], limits.wall, start);
    if let Some(id) = drop_to.filter(|_| !isolation.namespaces) {
        kill_all_of_uid(id);
    }
    let (status, timed_out, outputs) = waited?;
    let seconds = start.elapsed().as_secs_f64();
    let verdict = String::from_utf8_lossy(&outputs[1]).into_owned();
    let stderr = String::from_utf8_lossy(&outputs[0]).into_owned();
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == SETUP_FAILED {
        if let Some(line) = verdict.lines().find_map(|l| l.strip_prefix("setup ")) {
            let (step, errno) = line.split_once(' ').unwrap_or((line, "0"));
            let err = std::io::Error::from_raw_os_error(errno.trim().parse().unwrap_or(0));
            return Err(Error::Sandbox(format!("isolating the program failed at step {step:?}: {err}")));
        }
    }
    let outcome = |status, detail: String| Ok(Outcome { status, detail, seconds });
    if timed_out {
        return outcome(Status::Timeout, format!("killed after {:.1} s", limits.wall.as_secs_f64()));
    }
    if let Some(rest) = verdict.lines().find_map(|l| l.strip_prefix(nonce.as_str())) {
        let rest = rest.trim_start();
        let (word, detail) = rest.split_once(' ').unwrap_or((rest, ""));
        let status = match word {
            "passed" => Status::Passed,
            "failed" => Status::Failed,
            _ => Status::Error,
        };
        return outcome(status, detail.trim().to_string());
    }
    if libc::WIFSIGNALED(status) {
        return outcome(Status::Crashed, signal_name(libc::WTERMSIG(status)));
    }
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let code = libc::WEXITSTATUS(status);
    outcome(
        Status::Error,
        if last.is_empty() {
            format!("exited with status {code} before the tests finished")
        } else {
            format!("exited with status {code} before the tests finished: {}", truncate(last, 300))
        },
    )
}

#[cfg(not(target_os = "linux"))]
fn run_in(_: &Path, _: &Path, _: &str, _: &Limits, _: Isolation) -> Result<Outcome> {
    Err(Error::Sandbox("running untrusted programs needs Linux (namespaces, clone, rlimits)".into()))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(target_os = "linux")]
fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGXCPU => "SIGXCPU (CPU-time limit)",
        libc::SIGXFSZ => "SIGXFSZ (file-size limit)",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTERM => "SIGTERM",
        _ => return format!("killed by signal {sig}"),
    };
    format!("killed by {name}")
}

#[cfg(target_os = "linux")]
/// A descriptor closed on drop.
struct Fd(libc::c_int);

#[cfg(target_os = "linux")]
impl Drop for Fd {
    fn drop(&mut self) {
        unsafe { libc::close(self.0) };
    }
}

#[cfg(target_os = "linux")]
fn pipe() -> Result<(Fd, Fd)> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_error("creating a pipe"));
    }
    // Only our end is non-blocking: the program's writes must block when the pipe is full.
    if unsafe { libc::fcntl(fds[0], libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
        return Err(os_error("making a pipe non-blocking"));
    }
    Ok((Fd(fds[0]), Fd(fds[1])))
}

#[cfg(target_os = "linux")]
/// Kept of each stream: its last bytes (a program may print megabytes).
const KEEP: usize = 64 << 10;

#[cfg(target_os = "linux")]
/// Wait for `pid`, draining `fds` (keeping each one's tail), killing the process (and
/// with it its PID namespace, or its process group) at `wall`. Returns the wait
/// status, whether it timed out, and each stream's tail.
fn wait(pid: libc::pid_t, fds: &[&Fd], wall: Duration, start: Instant) -> Result<(i32, bool, Vec<Vec<u8>>)> {
    let mut tails = vec![Vec::new(); fds.len()];
    let mut open: Vec<bool> = vec![true; fds.len()];
    let mut status = None;
    let mut exited_at = None;
    let mut timed_out = false;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if status.is_none() {
            let mut st = 0;
            let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
            if r == pid {
                status = Some(st);
                exited_at = Some(Instant::now());
            } else if r < 0 {
                return Err(os_error("waiting for the sandboxed process"));
            }
        }
        // After the exit, descendants outside a PID namespace may still hold the pipes:
        // give them a moment, then stop reading (the fallback kills them by uid).
        let lingering = exited_at.is_some_and(|t| t.elapsed() > Duration::from_millis(200));
        if status.is_some() && (open.iter().all(|o| !o) || lingering) {
            break;
        }
        if !timed_out && status.is_none() && start.elapsed() >= wall {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::kill(-pid, libc::SIGKILL);
            }
            timed_out = true;
        }
        let mut polls: Vec<libc::pollfd> = fds
            .iter()
            .zip(&open)
            .filter(|(_, o)| **o)
            .map(|(fd, _)| libc::pollfd { fd: fd.0, events: libc::POLLIN, revents: 0 })
            .collect();
        let timeout_ms = 20;
        if polls.is_empty() {
            std::thread::sleep(Duration::from_millis(timeout_ms as u64));
        } else {
            unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, timeout_ms) };
        }
        for (i, fd) in fds.iter().enumerate() {
            if !open[i] || !polls.iter().any(|p| p.fd == fd.0 && p.revents != 0) {
                continue;
            }
            loop {
                let n = unsafe { libc::read(fd.0, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
                if n > 0 {
                    tails[i].extend_from_slice(&buf[..n as usize]);
                    if tails[i].len() > 2 * KEEP {
                        let cut = tails[i].len() - KEEP;
                        tails[i].drain(..cut);
                    }
                } else {
                    if n == 0 {
                        open[i] = false;
                    }
                    break;
                }
            }
        }
    }
    for t in &mut tails {
        if t.len() > KEEP {
            let cut = t.len() - KEEP;
            t.drain(..cut);
        }
    }
    Ok((status.expect("the loop ends after the exit"), timed_out, tails))
}

#[cfg(target_os = "linux")]
/// Root without namespaces: kill every process left with the run's uid (a program that
/// left its process group), from a child that takes that uid.
fn kill_all_of_uid(uid: u32) {
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            if libc::syscall(libc::SYS_setuid, uid) == 0 {
                libc::kill(-1, libc::SIGKILL);
            }
            libc::_exit(0);
        }
        if pid > 0 {
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
        }
    }
}

/// Remove a run's folder, even where the program made parts of it unwritable.
fn remove_tree(dir: &Path) {
    if std::fs::remove_dir_all(dir).is_ok() {
        return;
    }
    fn open_up(dir: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    open_up(&e.path());
                }
            }
        }
    }
    open_up(dir);
    let _ = std::fs::remove_dir_all(dir);
}
