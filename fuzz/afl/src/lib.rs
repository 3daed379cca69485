//! The AFL++ harness: the fixtures are built once, before the fork server starts; every input
//! AFL hands over runs through the entmin-fuzz target; a broken property panics, so that
//! AFL keeps it as a crash like any other.

pub fn run(target: &str) {
    let t = entmin_fuzz::find(target).unwrap_or_else(|| panic!("no fuzz target {target}"));
    let dir = std::env::temp_dir().join(format!("entmin-afl-{target}-{}", std::process::id()));
    let fixtures = entmin_fuzz::seeds::fixtures(&dir);
    entmin_fuzz::targets::clean(&fixtures.dir);
    // No abort-on-panic hook: panics our code contains (a dependency's, caught and turned
    // into errors) are not findings; one that escapes the target still aborts.
    afl::fuzz_nohook!(|data: &[u8]| {
        if let Err(msg) = (t.run)(&fixtures, data) {
            panic!("{}: {msg}", t.name);
        }
    });
}
