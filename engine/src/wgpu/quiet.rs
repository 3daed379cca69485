//! Adapter probing without driver noise.
//!
//! Mesa's Vulkan device-select layer connects to Wayland while the loader enumerates
//! physical devices, and libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set
//! in the environment." on every machine without a desktop session: a new user reads it
//! as entmin failing. Nothing in the Vulkan API turns it off, and the layer's own switch
//! is an environment variable, which a library cannot set safely once threads run. So
//! while a probe runs, file descriptor 2 points at an in-memory file; afterwards every
//! captured line but that one is written back to the real stderr.

/// Lines of known, harmless driver output that a probe swallows.
const NOISE: [&str; 1] = ["XDG_RUNTIME_DIR is invalid or not set in the environment"];

/// `probe()` with stderr captured and replayed without [`NOISE`]. Output of other
/// threads during the probe (a few milliseconds) is replayed too, after it.
#[cfg(target_os = "linux")]
pub fn without_driver_noise<R>(probe: impl FnOnce() -> R) -> R {
    use std::io::{Read, Seek, Write};
    use std::os::fd::FromRawFd;

    // SAFETY: plain descriptor calls on descriptors this function owns or on fd 2, which
    // it restores before returning (also when `probe` panics).
    unsafe {
        let capture = libc::memfd_create(c"entmin-probe-stderr".as_ptr(), libc::MFD_CLOEXEC);
        let saved = libc::dup(2);
        if capture < 0 || saved < 0 || libc::dup2(capture, 2) < 0 {
            for fd in [capture, saved].into_iter().filter(|&fd| fd >= 0) {
                libc::close(fd);
            }
            return probe();
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(probe));
        libc::dup2(saved, 2);
        libc::close(saved);
        let mut file = std::fs::File::from_raw_fd(capture);
        let mut captured = String::new();
        if file.rewind().is_ok() && file.read_to_string(&mut captured).is_ok() {
            let kept: String =
                captured.split_inclusive('\n').filter(|line| !NOISE.iter().any(|n| line.contains(n))).collect();
            let _ = std::io::stderr().write_all(kept.as_bytes());
        }
        result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

#[cfg(not(target_os = "linux"))]
pub fn without_driver_noise<R>(probe: impl FnOnce() -> R) -> R {
    probe()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The noise goes; other output of the probe stays. Run in a child process, whose
    /// stderr the test reads (the test harness's own stderr is not a file it can read).
    #[test]
    fn probe_output_is_kept_but_the_wayland_line() {
        if std::env::var_os("ENTMIN_QUIET_CHILD").is_some() {
            let v = without_driver_noise(|| {
                // SAFETY: writes a valid buffer to fd 2, as C drivers do.
                let write = |s: &str| unsafe { libc::write(2, s.as_ptr().cast(), s.len()) };
                write("error: XDG_RUNTIME_DIR is invalid or not set in the environment.\n");
                write("driver: a real warning\n");
                7
            });
            assert_eq!(v, 7);
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args(["--exact", "wgpu::quiet::tests::probe_output_is_kept_but_the_wayland_line", "--nocapture"])
            .env("ENTMIN_QUIET_CHILD", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(err.contains("driver: a real warning"), "{err}");
        assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
    }
}
