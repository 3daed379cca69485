//! The code sandbox against hostile programs (issue: code reasoning). Each program
//! must get the right status within its limits, the test process (the evaluator) must
//! survive all of them, no process may be left behind, and programs running at the same
//! time must not disturb each other. Run as the current user, and (when that is root,
//! as in CI) once more as an unprivileged user by re-running this test binary as
//! `nobody` through setpriv.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use entmin::code::{Limits, Outcome, Pool, Sandbox, Status};

fn limits() -> Limits {
    Limits { wall: Duration::from_secs(3), ..Limits::default() }
}

/// Processes whose working folder is one of this process's sandbox folders.
fn leftovers() -> Vec<String> {
    let marker = format!("entmin-sandbox-{}-", std::process::id());
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cwd) = std::fs::read_link(e.path().join("cwd")) {
            if cwd.to_string_lossy().contains(&marker) {
                found.push(format!("{} in {}", e.file_name().to_string_lossy(), cwd.display()));
            }
        }
    }
    found
}

fn expect(outcome: &Outcome, status: Status, detail: &str, what: &str) {
    assert_eq!(outcome.status, status, "{what}: {outcome:?}");
    assert!(outcome.detail.contains(detail), "{what}: detail {:?} lacks {detail:?}", outcome.detail);
}

fn check_hostile_programs() {
    let sandbox = Sandbox::new(limits()).expect("this machine can isolate programs");
    let isolation = sandbox.isolation();
    eprintln!("isolation: {}", isolation.describe());
    assert!(isolation.namespaces, "CI machines support namespaces; got {isolation:?}");
    // A secret in the evaluator's environment, which no program may see.
    std::env::set_var("ENTMIN_TEST_SECRET", "hunter2");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let escape = std::env::temp_dir().join(format!("entmin-escape-{}", std::process::id()));
    let evaluator = std::process::id();

    let cases: Vec<(&str, String, Status, &str)> = vec![
        ("passes", "def f():\n    return 1\nassert f() == 1\n".into(), Status::Passed, ""),
        ("fails", "assert 1 == 2, 'one is not two'\n".into(), Status::Failed, "one is not two"),
        ("raises", "raise ValueError('bad value')\n".into(), Status::Error, "ValueError: bad value"),
        ("syntax", "def f(:\n".into(), Status::Error, "SyntaxError"),
        ("loops", "while True:\n    pass\n".into(), Status::Timeout, "killed after"),
        ("sleeps", "import time\ntime.sleep(60)\n".into(), Status::Timeout, "killed after"),
        (
            "forks until refused, children sleep",
            "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(60)\n            \
             os._exit(0)\n        n += 1\nexcept OSError:\n    pass\nassert n < 16, n\n"
                .into(),
            Status::Passed,
            "",
        ),
        ("fork bomb", "import os\nwhile True:\n    os.fork()\n".into(), Status::Error, "BlockingIOError"),
        ("allocates 30 GB", "x = bytearray(30 * 2**30)\n".into(), Status::Error, "MemoryError"),
        (
            "writes a huge file",
            "with open('big', 'wb') as f:\n    f.write(b'x' * (64 << 20))\n".into(),
            Status::Error,
            "File too large",
        ),
        (
            "writes outside its folder",
            format!("open({:?}, 'w').write('x')\n", escape.display().to_string()),
            Status::Error,
            "Read-only file system",
        ),
        (
            "opens a socket",
            "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\n".into(),
            Status::Error,
            "OSError",
        ),
        (
            "connects to the evaluator's loopback",
            format!("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"),
            Status::Error,
            "Error",
        ),
        // Its parent is outside its PID namespace (getppid() is 0, so this signals its own
        // group), and the namespace's init ignores signals from inside it.
        ("kills its parent", "import os\nos.kill(os.getppid(), 9)\n".into(), Status::Passed, ""),
        ("kills the evaluator", format!("import os\nos.kill({evaluator}, 9)\n"), Status::Error, "Error"),
        (
            "kills everything it can",
            // Signals every process it can see: its own child, nothing outside.
            "import os, time\npid = os.fork()\nif pid == 0:\n    time.sleep(60)\n    os._exit(0)\nos.kill(-1, 9)\n\
             _, status = os.waitpid(pid, 0)\nassert os.WIFSIGNALED(status), status\n"
                .into(),
            Status::Passed,
            "",
        ),
        (
            "prints megabytes",
            "import sys\nfor _ in range(100):\n    print('x' * 100000)\nsys.stderr.write('y' * 5000000)\n".into(),
            Status::Passed,
            "",
        ),
        ("exits early", "import os\nprint('passed')\nos._exit(0)\n".into(), Status::Error, "before the tests finished"),
        ("sys.exit", "import sys\nsys.exit(0)\n".into(), Status::Error, "SystemExit"),
        ("closes the verdict channel", "import os\nos.close(3)\n".into(), Status::Error, "before the tests finished"),
        ("segfaults", "import ctypes\nctypes.string_at(0)\n".into(), Status::Crashed, "SIGSEGV"),
        ("reads stdin", "input()\n".into(), Status::Error, "EOFError"),
        (
            "looks for secrets and privileges",
            "import os\nassert 'ENTMIN_TEST_SECRET' not in os.environ, 'secret leaked'\nassert os.getuid() != 0, 'root'\n\
             assert sorted(os.environ) == ['HOME', 'LANG', 'PATH', 'TMPDIR'], sorted(os.environ)\n"
                .into(),
            Status::Passed,
            "",
        ),
    ];

    // Every case twice, all at once: no run may disturb another (the kill -1 and fork
    // bomb ones run beside passing ones).
    let pool = Pool::new(sandbox.clone(), 8);
    let start = Instant::now();
    let sources: Vec<String> = cases.iter().chain(&cases).map(|c| c.1.clone()).collect();
    let outcomes = pool.run_all(sources).expect("every program runs");
    let took = start.elapsed();
    for (case, outcome) in cases.iter().chain(&cases).zip(&outcomes) {
        expect(outcome, case.2, case.3, case.0);
        assert!(outcome.seconds < 3.0 + 2.0, "{}: {outcome:?} overran the limit", case.0);
    }
    assert!(took < Duration::from_secs(60), "the pool took {took:?}");
    assert!(listener.accept().is_err(), "a program reached the evaluator's loopback socket");
    assert!(!escape.exists(), "a program wrote {}", escape.display());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(leftovers(), Vec::<String>::new(), "processes left behind");
    let stray: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("entmin-sandbox-{}-", std::process::id())))
        .collect();
    assert!(stray.is_empty(), "sandbox folders left behind: {stray:?}");
}

#[test]
fn hostile_programs_get_the_right_status_and_the_evaluator_survives() {
    check_hostile_programs();
}

/// As root, the same checks from an unprivileged uid (user namespaces instead of a
/// fresh uid): this test binary, copied where `nobody` can run it, re-runs the test
/// above. As an ordinary user the test above already is this case, so it runs again
/// in-process.
#[test]
fn hostile_programs_as_an_ordinary_user() {
    if unsafe { libc::geteuid() } != 0 {
        check_hostile_programs();
        return;
    }
    let dir = std::env::temp_dir().join(format!("entmin-sandbox-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("sandbox-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args(["--exact", "hostile_programs_get_the_right_status_and_the_evaluator_survives", "--nocapture"])
        .env("TMPDIR", "/tmp")
        .current_dir("/tmp")
        .output()
        .expect("setpriv (util-linux) runs");
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "as nobody:\n{text}");
    assert!(text.contains("user + pid"), "as nobody the sandbox should use a user namespace:\n{text}");
}
