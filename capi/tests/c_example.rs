//! capi/examples/chat.c, compiled here with the system C compiler against the header
//! and the libraries the build made, streams a two-turn EM-INF conversation with a
//! tiny random model under valgrind (no leak, no invalid access) and statically
//! linked, token for token equal to what the Rust library generates for the same
//! requests; its watchdog thread cancels an answer through a cancel handle.
//!
//! Needs libentmin.so / libentmin.a from `cargo build -p entmin -p entmin-capi`
//! (scripts/test.sh builds them first: `cargo test` does not build a library that has
//! no rlib), cc and valgrind.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use entmin_rs::models::{Architecture, Message};
use entmin_rs::{DeviceKind, Engine, Flow, Options, Request};
use entmin_tests::gguf_writer::tiny_model_gguf;
use entmin_tests::tiny::{config, random_weights};

const CRATE_DIR: &str = env!("CARGO_MANIFEST_DIR");
const QUESTIONS: [&str; 2] = ["What is 2+3?", "And 4+4?"];
const MAX_TOKENS: usize = 40;
const STOP_AFTER: usize = 12;

/// Directory of the build's libraries: this test runs from target/<profile>/deps.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its path");
    exe.parent().and_then(Path::parent).expect("tests run from target/<profile>/deps").to_path_buf()
}

fn run(cmd: &mut Command, stdin: &str) -> Output {
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| {
            panic!("cannot start {cmd:?}: {e}");
        });
    child.stdin.take().expect("piped").write_all(stdin.as_bytes()).expect("the program reads stdin");
    child.wait_with_output().expect("the program ends")
}

fn check(what: &str, out: &Output) -> (String, String) {
    let stdout = String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what} failed ({}):\n{stderr}", out.status);
    (stdout, stderr)
}

/// Compiles chat.c against the shared (`static_link` false) or static library.
fn compile(dir: &Path, static_link: bool) -> PathBuf {
    let lib = library_dir();
    let library = lib.join(if static_link { "libentmin.a" } else { "libentmin.so" });
    assert!(
        library.exists(),
        "{} is missing: build it with `cargo build -p entmin -p entmin-capi` (scripts/test.sh does)",
        library.display()
    );
    // `cargo test` does not rebuild the library: catch a stale one before it misleads.
    let built = std::fs::metadata(&library).and_then(|m| m.modified()).expect("the library's mtime");
    for entry in std::fs::read_dir(Path::new(CRATE_DIR).join("src")).expect("capi/src") {
        let source = entry.expect("capi/src entry").path();
        if source.ends_with("tests.rs") {
            continue; // unit tests only: not part of the library, so cargo does not relink it
        }
        let changed = std::fs::metadata(&source).and_then(|m| m.modified()).expect("a source's mtime");
        assert!(
            changed <= built,
            "{} is older than {}: rebuild it with `cargo build -p entmin -p entmin-capi`",
            library.display(),
            source.display()
        );
    }
    let exe = dir.join(if static_link { "chat-static" } else { "chat" });
    let mut cc = Command::new("cc");
    cc.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g", "-o"])
        .arg(&exe)
        .arg(Path::new(CRATE_DIR).join("examples/chat.c"))
        .arg("-I")
        .arg(Path::new(CRATE_DIR).join("include"));
    if static_link {
        // What rustc reports as the static library's native dependencies on Linux.
        cc.arg(&library).args(["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"]);
    } else {
        cc.arg("-L").arg(&lib).arg("-lentmin").arg("-lpthread").arg(format!("-Wl,-rpath,{}", lib.display()));
    }
    check("cc (install a C compiler; scripts/test.sh does)", &cc.output().expect("cc runs"));
    exe
}

/// valgrind's memcheck, failing the run on any invalid access and on memory the
/// program lost (definitely or indirectly). Blocks only reachable through interior
/// pointers ("possibly lost": hash tables in statics) are not leaks the program made.
fn memcheck() -> Command {
    let mut cmd = Command::new("valgrind");
    cmd.args(["--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect"])
        .arg("--show-leak-kinds=definite,indirect");
    cmd
}

/// One token as chat.c's --trace prints it and as the Rust library reports it.
#[derive(Debug, PartialEq)]
struct Token {
    id: u32,
    logprob: f32,
    entropy: f32,
    entropy_after: f32,
    sampled_entropy: f32,
    em_steps: u32,
}

fn traced_tokens(stderr: &str) -> Vec<Token> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("token\t"))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 6, "trace line {l:?}");
            let float = |s: &str| s.parse::<f32>().unwrap_or_else(|_| panic!("{s:?} in {l:?}"));
            Token {
                id: f[0].parse().expect("id"),
                logprob: float(f[1]),
                entropy: float(f[2]),
                entropy_after: float(f[3]),
                sampled_entropy: float(f[4]),
                em_steps: f[5].parse().expect("steps"),
            }
        })
        .collect()
}

/// The conversation as the Rust library answers it: each turn's tokens and text.
fn reference(model: &Path) -> Vec<(Vec<Token>, String)> {
    let engine = Engine::load(model.to_str().unwrap(), Options { device: DeviceKind::Cpu, ..Options::default() })
        .expect("the tiny model loads");
    let mut history = Vec::new();
    let mut turns = Vec::new();
    for q in QUESTIONS {
        history.push(Message::new("user", q));
        let mut tokens = Vec::new();
        let answer = engine
            .generate(&Request::messages(history.clone()).max_tokens(MAX_TOKENS), |s| {
                tokens.push(Token {
                    id: s.token,
                    logprob: s.logprob,
                    entropy: s.entropy,
                    entropy_after: s.em_inf.map_or(s.entropy, |e| e.entropy_after),
                    sampled_entropy: s.sampled_entropy,
                    em_steps: s.em_inf.map_or(0, |e| e.steps),
                });
                if tokens.len() >= STOP_AFTER {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            })
            .expect("the reference generates");
        history.push(Message::new("assistant", &answer.text));
        turns.push((tokens, answer.text));
    }
    turns
}

#[test]
fn chat_example_streams_em_inf_under_valgrind_and_statically_linked() {
    let dir = entmin_tests::scratch_dir("capi");
    let mut c = config(Architecture::Llama, true);
    // Room for the ChatML prompts of two turns in the byte-level vocabulary.
    c.context_length = 512;
    let model = dir.join("tiny.gguf");
    std::fs::write(&model, tiny_model_gguf(&c, &random_weights(&c, 7)).build()).unwrap();
    let want = reference(&model);
    assert!(want.iter().all(|(t, _)| t.len() == STOP_AFTER), "the reference stops after {STOP_AFTER} tokens");
    assert!(want[0].0.iter().any(|t| t.em_steps > 0), "EM-INF optimises some of the tiny model's tokens");

    let args = ["--device", "cpu", "--plain-text", "--trace"];
    let limits = ["--max-tokens", &MAX_TOKENS.to_string(), "--stop-after", &STOP_AFTER.to_string()];
    let stdin = QUESTIONS.join("\n") + "\n";
    let expect_output = |what: &str, stdout: &str, stderr: &str| {
        let tokens = traced_tokens(stderr);
        let want_tokens: Vec<&Token> = want.iter().flat_map(|(t, _)| t).collect();
        assert_eq!(
            tokens.iter().collect::<Vec<_>>(),
            want_tokens,
            "{what}: tokens differ from the Rust library's\n{stderr}"
        );
        let want_text: String = want.iter().map(|(_, text)| format!("{text}\n")).collect();
        assert_eq!(stdout, want_text, "{what}: streamed text");
        let summaries = stderr
            .lines()
            .filter(|l| l.contains(&format!("[{STOP_AFTER} tokens,")) && l.ends_with("finish: cancelled]"));
        assert_eq!(summaries.count(), 2, "{what}: a summary per answer, stopped by the callback\n{stderr}");
    };

    let shared = compile(&dir, false);
    let valgrind = Command::new("valgrind").arg("--version").output();
    assert!(valgrind.is_ok_and(|o| o.status.success()), "valgrind is not installed (scripts/test.sh installs it)");
    let mut cmd = memcheck();
    cmd.arg(&shared).args(args).args(limits).arg(&model);
    let (stdout, stderr) = check("chat under valgrind", &run(&mut cmd, &stdin));
    // valgrind's own summary: it ran, and found nothing.
    assert!(stderr.contains("ERROR SUMMARY: 0 errors"), "valgrind's report:\n{stderr}");
    assert!(stderr.contains("definitely lost: 0 bytes") || stderr.contains("All heap blocks were freed"), "{stderr}");
    expect_output("chat under valgrind", &stdout, &stderr);

    let static_exe = compile(&dir, true);
    let (stdout, stderr) =
        check("static chat", &run(Command::new(&static_exe).args(args).args(limits).arg(&model), &stdin));
    expect_output("static chat", &stdout, &stderr);

    // The watchdog thread cancels through a cancel handle long before 400 tokens.
    let mut cmd = memcheck();
    cmd.arg(&shared).args(["--device", "cpu", "--plain-text", "--max-tokens", "400", "--seconds", "0.5"]).arg(&model);
    let (_, stderr) = check("chat with a time limit under valgrind", &run(&mut cmd, "Tell me a long story.\n"));
    assert!(stderr.contains("ERROR SUMMARY: 0 errors"), "valgrind's report:\n{stderr}");
    assert!(stderr.contains("finish: cancelled]"), "{stderr}");
}

/// The C snippet in README.md compiles and links as it stands.
#[test]
fn readme_snippet_builds() {
    let readme = std::fs::read_to_string(Path::new(CRATE_DIR).join("../README.md")).expect("README.md");
    let start = readme.find("```c\n").expect("README.md has a C snippet") + "```c\n".len();
    let end = start + readme[start..].find("```").expect("the snippet ends");
    let dir = entmin_tests::scratch_dir("capi-readme");
    let source = dir.join("app.c");
    std::fs::write(&source, &readme[start..end]).unwrap();
    let lib = library_dir();
    let out = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(dir.join("app"))
        .arg(&source)
        .arg("-I")
        .arg(Path::new(CRATE_DIR).join("include"))
        .arg("-L")
        .arg(&lib)
        .arg("-lentmin")
        .output()
        .expect("cc runs");
    check("cc on README.md's C snippet", &out);
}

/// scripts/install-capi.sh lays out a prefix whose pkg-config file builds the example.
#[test]
fn installed_prefix_builds_with_pkg_config() {
    let dir = entmin_tests::scratch_dir("capi-install");
    let prefix = dir.join("prefix");
    let script = Path::new(CRATE_DIR).join("../scripts/install-capi.sh");
    check("install-capi.sh", &Command::new(&script).arg(&prefix).arg("--dev").output().expect("bash runs"));
    for f in ["lib/libentmin.so", "lib/libentmin.a", "include/entmin.h", "lib/pkgconfig/entmin.pc"] {
        assert!(prefix.join(f).is_file(), "{f} is not installed");
    }
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "entmin"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .expect("pkg-config runs (scripts/test.sh installs it)");
    let (flags, _) = check("pkg-config", &flags);
    let exe = dir.join("chat");
    let mut cc = Command::new("cc");
    cc.arg("-o").arg(&exe).arg(Path::new(CRATE_DIR).join("examples/chat.c")).args(flags.split_whitespace());
    cc.arg(format!("-Wl,-rpath,{}", prefix.join("lib").display())).arg("-lpthread");
    check("cc with pkg-config's flags", &cc.output().expect("cc runs"));
    let mut c = config(Architecture::Qwen2, false);
    c.context_length = 256;
    let model = dir.join("tiny.gguf");
    std::fs::write(&model, tiny_model_gguf(&c, &random_weights(&c, 5)).build()).unwrap();
    let out = run(
        Command::new(&exe).args(["--device", "cpu", "--trace", "--max-tokens", "9", "--stop-after", "3"]).arg(&model),
        "Hello\n",
    );
    let (_, stderr) = check("the installed chat", &out);
    assert_eq!(traced_tokens(&stderr).len(), 3, "{stderr}");
    // The prefix holds a copy of the 270 MB static library.
    std::fs::remove_dir_all(&dir).ok();
}
