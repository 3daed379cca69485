//! The child side of a sandboxed run: everything between `clone` and `execve`.
//!
//! The child is a copy of a multi-threaded process, so it may only make system calls:
//! no allocation, no locks, no formatting. Every string and array it needs is prepared
//! by the parent in a [`ChildPlan`] before the clone. A failed step writes
//! `setup <step> <errno>` to the verdict descriptor and exits with [`SETUP_FAILED`].

use std::ffi::{c_char, c_int, c_void, CString};

/// Exit status of a child whose isolation could not be set up.
pub(super) const SETUP_FAILED: c_int = 125;

// Not (yet) in the libc crate: the mount_setattr(2) interface (Linux 5.12).
const AT_RECURSIVE: c_int = 0x8000;
const MOUNT_ATTR_RDONLY: u64 = 0x1;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// What the child does, prepared by the parent.
pub(super) struct ChildPlan {
    /// The child starts in new PID, network, mount and IPC namespaces.
    pub namespaces: bool,
    /// …and a new user namespace, in which it writes its own id maps (`uid_map`,
    /// `gid_map`: "ID ID 1", the caller's ids mapped to themselves).
    pub user_namespace: Option<(CString, CString)>,
    /// Remount everything read-only except the working folder (needs `namespaces`).
    pub read_only_fs: bool,
    /// Root only: the unprivileged (uid, gid) the program runs as.
    pub drop_to: Option<(libc::uid_t, libc::gid_t)>,
    pub workdir: CString,
    pub program: CString,
    /// NULL-terminated argv and envp; the pointers point into `_strings`.
    pub argv: Vec<*const c_char>,
    pub envp: Vec<*const c_char>,
    pub _strings: Vec<CString>,
    /// Write ends of the stderr and verdict pipes (become descriptors 2 and 3).
    pub stderr_fd: c_int,
    pub verdict_fd: c_int,
    /// (resource, limit) pairs, soft = hard.
    pub limits: Vec<(libc::__rlimit_resource_t, libc::rlim_t)>,
}

/// The entry point `clone` runs in the child.
pub(super) extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: the parent passes a pointer to a ChildPlan that outlives the clone call;
    // the child works on its own copy of the parent's memory.
    let plan = unsafe { &*(arg as *const ChildPlan) };
    let (step, errno, verdict_fd) = unsafe { setup_and_exec(plan) };
    unsafe { report_failure(verdict_fd, step, errno) };
    unsafe { libc::_exit(SETUP_FAILED) }
}

/// Returns only on failure: the step that failed, its errno and where the verdict
/// descriptor is by then.
unsafe fn setup_and_exec(plan: &ChildPlan) -> (&'static [u8], c_int, c_int) {
    let mut verdict = plan.verdict_fd;
    macro_rules! check {
        ($step:literal, $call:expr) => {
            if $call < 0 {
                return ($step.as_bytes(), errno(), verdict);
            }
        };
    }
    if let Some((uid_map, gid_map)) = &plan.user_namespace {
        check!("setgroups", write_file(c"/proc/self/setgroups".as_ptr(), b"deny"));
        check!("uid_map", write_file(c"/proc/self/uid_map".as_ptr(), uid_map.as_bytes()));
        check!("gid_map", write_file(c"/proc/self/gid_map".as_ptr(), gid_map.as_bytes()));
    }
    // Its own process group: the fallback without a PID namespace kills the group.
    check!("setpgid", libc::setpgid(0, 0));
    if plan.read_only_fs {
        let root = c"/".as_ptr();
        check!(
            "mount-private",
            libc::mount(std::ptr::null(), root, std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null())
        );
        let dir = plan.workdir.as_ptr();
        check!("bind-workdir", libc::mount(dir, dir, std::ptr::null(), libc::MS_BIND, std::ptr::null()));
        let read_only = MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
        check!("read-only-root", mount_setattr(root, AT_RECURSIVE, &read_only));
        let writable = MountAttr { attr_set: 0, attr_clr: MOUNT_ATTR_RDONLY, propagation: 0, userns_fd: 0 };
        check!("writable-workdir", mount_setattr(dir, 0, &writable));
    }
    check!("chdir", libc::chdir(plan.workdir.as_ptr()));
    // Descriptors: 0 and 1 on /dev/null, 2 and 3 on the pipes, nothing else open.
    // Move the pipe ends above 3 first, so that no dup2 overwrites one of them.
    let stderr_fd = libc::fcntl(plan.stderr_fd, libc::F_DUPFD, 10);
    check!("dup-stderr", stderr_fd);
    let verdict_fd = libc::fcntl(plan.verdict_fd, libc::F_DUPFD, 10);
    check!("dup-verdict", verdict_fd);
    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
    check!("open-null", null);
    check!("stdin", libc::dup2(null, 0));
    check!("stdout", libc::dup2(null, 1));
    check!("stderr", libc::dup2(stderr_fd, 2));
    check!("fd3", libc::dup2(verdict_fd, 3));
    verdict = 3;
    if libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32) < 0 {
        for fd in 4..4096 {
            libc::close(fd);
        }
    }
    if let Some((uid, gid)) = plan.drop_to {
        // Raw system calls: glibc's wrappers would try to change the ids of threads
        // that exist only in the parent.
        check!("setgroups-drop", libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()));
        check!("setgid", libc::syscall(libc::SYS_setgid, gid));
        check!("setuid", libc::syscall(libc::SYS_setuid, uid));
    }
    for &(resource, limit) in &plan.limits {
        let rl = libc::rlimit { rlim_cur: limit, rlim_max: limit };
        check!("setrlimit", libc::setrlimit(resource, &rl));
    }
    check!("no-new-privs", libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    // Set after the uid change, which clears it: the program dies with its waiting thread.
    check!("pdeathsig", libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0));
    libc::execve(plan.program.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr());
    (b"execve", errno(), verdict)
}

unsafe fn errno() -> c_int {
    *libc::__errno_location()
}

unsafe fn write_file(path: *const c_char, bytes: &[u8]) -> c_int {
    let fd = libc::open(path, libc::O_WRONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return -1;
    }
    let n = libc::write(fd, bytes.as_ptr() as *const c_void, bytes.len());
    libc::close(fd);
    if n == bytes.len() as isize {
        0
    } else {
        -1
    }
}

unsafe fn mount_setattr(path: *const c_char, flags: c_int, attr: &MountAttr) -> c_int {
    libc::syscall(
        libc::SYS_mount_setattr,
        libc::AT_FDCWD,
        path,
        flags as libc::c_uint,
        attr as *const MountAttr,
        std::mem::size_of::<MountAttr>(),
    ) as c_int
}

/// Write "setup STEP ERRNO\n" without allocating.
unsafe fn report_failure(fd: c_int, step: &[u8], errno: c_int) {
    let mut buf = [0u8; 96];
    let mut n = 0;
    for &b in b"setup ".iter().chain(step).chain(b" ") {
        if n < 80 {
            buf[n] = b;
            n += 1;
        }
    }
    let mut digits = [0u8; 12];
    let (mut d, mut v) = (0, errno.unsigned_abs());
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        buf[n] = digits[d];
        n += 1;
    }
    buf[n] = b'\n';
    libc::write(fd, buf.as_ptr() as *const c_void, n + 1);
}
