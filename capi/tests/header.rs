//! The committed header is what cbindgen makes of the source today, and libentmin.so
//! exports exactly the functions it declares.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const CRATE_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn header_path() -> PathBuf {
    Path::new(CRATE_DIR).join("include/entmin.h")
}

fn generated_header() -> Vec<u8> {
    let config =
        cbindgen::Config::from_file(Path::new(CRATE_DIR).join("cbindgen.toml")).expect("capi/cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(Path::new(CRATE_DIR).join("src/lib.rs"))
        .generate()
        .expect("cbindgen reads capi/src");
    let mut out = Vec::new();
    bindings.write(&mut out);
    out
}

#[test]
fn committed_header_matches_the_source() {
    let generated = generated_header();
    let path = header_path();
    if std::env::var_os("ENTMIN_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("include/entmin.h is writable");
        eprintln!("wrote {}", path.display());
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is not what cbindgen makes of capi/src: regenerate it with \
         ENTMIN_UPDATE_HEADER=1 cargo test -p entmin-capi --test header, and commit it",
        path.display()
    );
}

/// Function names the header declares: `entmin_x(` at the start of a declaration.
fn declared_functions(header: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in header.lines().filter(|l| !l.trim_start().starts_with(['*', '/'])) {
        if let Some(open) = line.find('(') {
            let before = &line[..open];
            let name = before.rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or("");
            // Function-pointer typedefs read `(*name)(`: their name is not before a `(`.
            if name.starts_with("entmin_") && !before.trim_end().ends_with("(*") {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// Directory of the build's libraries: this test runs from target/<profile>/deps.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its path");
    exe.parent().and_then(Path::parent).expect("tests run from target/<profile>/deps").to_path_buf()
}

#[test]
fn the_shared_library_exports_exactly_the_header() {
    let header = std::fs::read_to_string(header_path()).expect("include/entmin.h exists");
    let declared = declared_functions(&header);
    assert!(declared.len() >= 10 && declared.contains("entmin_chat"), "header parse found {declared:?}");
    let so = library_dir().join("libentmin.so");
    let out = Command::new("nm").args(["-D", "--defined-only"]).arg(&so).output().expect("nm runs (binutils)");
    assert!(out.status.success(), "nm {}: {}", so.display(), String::from_utf8_lossy(&out.stderr));
    // Lines are "address type name"; text symbols (T) are the exported functions.
    let exported: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [_, "T", name] => Some(name.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(exported, declared, "{} exports other functions than include/entmin.h declares", so.display());
}
