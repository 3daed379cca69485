//! `entmin-fuzz TARGET|all [--seconds N] [--seed S] [--findings DIR]`: mutation fuzzing
//! without coverage feedback (what the test suite's smoke run uses); prints executions,
//! speed and findings per target. `entmin-fuzz --list` names the targets;
//! `entmin-fuzz --write-seeds DIR` writes each target's seed corpus to DIR/TARGET/ for
//! the coverage-guided AFL++ runs (scripts/fuzz.sh).

use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    if args.is_empty() || args[0] == "--list" || args[0] == "--help" {
        for t in &entmin_fuzz::TARGETS {
            println!("{:<15} {}", t.name, t.about);
        }
        return;
    }
    if args[0] == "--write-seeds" {
        let out = PathBuf::from(args.get(1).expect("--write-seeds DIR"));
        let dir = std::env::temp_dir().join(format!("entmin-fuzz-{}", std::process::id()));
        let (_, seeds) = entmin_fuzz::seeds::build(&dir);
        for (name, corpus) in seeds {
            let d = out.join(name);
            std::fs::create_dir_all(&d).expect("seed folder");
            for (i, s) in corpus.iter().enumerate() {
                std::fs::write(d.join(format!("seed-{i:03}")), s).expect("seed file");
            }
            println!("{name}: {} seeds", corpus.len());
        }
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let seconds: f64 = flag("--seconds").map_or(60.0, |s| s.parse().expect("--seconds N"));
    let seed: u64 = flag("--seed").map_or(1, |s| s.parse().expect("--seed N"));
    let findings = PathBuf::from(flag("--findings").unwrap_or_else(|| "fuzz/findings".into()));
    let targets: Vec<&'static entmin_fuzz::Target> = if args[0] == "all" {
        entmin_fuzz::TARGETS.iter().collect()
    } else {
        vec![entmin_fuzz::find(&args[0]).unwrap_or_else(|| panic!("no target {:?} (try --list)", args[0]))]
    };
    // Findings are reported, not printed as panics.
    std::panic::set_hook(Box::new(|_| {}));
    let dir = std::env::temp_dir().join(format!("entmin-fuzz-{}", std::process::id()));
    let (fixtures, seeds) = entmin_fuzz::seeds::build(&dir);
    let mut total = 0;
    for t in targets {
        entmin_fuzz::targets::clean(&fixtures.dir);
        let corpus = &seeds.iter().find(|(n, _)| *n == t.name).expect("seeds for every target").1;
        let r = entmin_fuzz::fuzz(t, &fixtures, corpus, Duration::from_secs_f64(seconds), u64::MAX, seed, &findings);
        println!(
            "{:<15} {:>9} executions in {:>6.0} s ({:>7.1}/s) from {} seeds, {} findings",
            r.target,
            r.executions,
            r.seconds,
            r.executions as f64 / r.seconds,
            r.seeds,
            r.findings.len()
        );
        for (msg, path) in &r.findings {
            println!("    {}: {}", path.display(), msg.chars().take(300).collect::<String>());
        }
        total += r.findings.len();
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::process::exit(if total > 0 { 1 } else { 0 });
}
