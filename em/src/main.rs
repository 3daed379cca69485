use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(name = "entmin", version, about = "Entropy minimisation for language models: generate, inspect, evaluate")]
struct Cli {
    /// Worker threads (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an answer, streamed as it is produced.
    Generate(cli::generate::Args),
    /// Serve the OpenAI API (chat and completions, streaming, EM-INF per request).
    Serve(cli::serve::Args),
    /// Accuracy of decoding methods on math problems, side by side.
    Eval(cli::eval::Args),
    /// Per-position logits and entropies of a prompt (JSON for machines).
    Logits(cli::logits::Args),
    /// Architecture, sizes, dtypes and memory of a model.
    Info(cli::info::Args),
    /// Fetch a catalog model into the cache (or list the catalog).
    Pull(cli::pull::Args),
    /// Prefill and decode speed and peak memory of a model on this machine.
    Bench(cli::bench::Args),
    /// EM-FT: fine-tune a model on its own samples to lower its entropy (CPU).
    Ft(cli::ft::Args),
    /// EM-RL: reinforcement learning with the model's negative entropy as the reward (CPU).
    Rl(cli::rl::Args),
    /// Speed and peak memory of one EM-FT training step (CPU).
    BenchTrain(cli::bench_train::Args),
    /// Plot a training run's metrics.jsonl (entropy and loss against step) as SVG.
    Plot(cli::plot::Args),
    /// What this machine offers each backend (CPU, wgpu adapters, CUDA), and with
    /// --compile-kernels every CUDA kernel's registers, shared memory and spills.
    Doctor(cli::doctor::Args),
}

fn main() {
    cli::cuda_libraries::relaunch_if_needed();
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new().num_threads(n).build_global() {
            eprintln!("entmin: cannot set {n} threads: {e}");
            std::process::exit(2);
        }
    }
    // The command runs on a pool thread, so the parallel loops it starts begin on the
    // thread that asks for them instead of waking a sleeping worker per op and parking
    // the main thread (a decode step runs ~200 of them). The server is the exception: its
    // async runtime must not hold a pool thread; its model thread enters the pool itself.
    let cli = match cli.command {
        Command::Serve(a) => {
            if let Err(e) = cli::serve::run(a) {
                eprintln!("entmin: error: {e:#}");
                std::process::exit(1);
            }
            return;
        }
        command => Cli { command, ..cli },
    };
    let result = rayon::scope(move |_| match cli.command {
        Command::Serve(_) => unreachable!("served outside the pool"),
        Command::Generate(a) => cli::generate::run(a),
        Command::Eval(a) => cli::eval::run(a),
        Command::Logits(a) => cli::logits::run(a),
        Command::Info(a) => cli::info::run(a),
        Command::Pull(a) => cli::pull::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::Doctor(a) => cli::doctor::run(a),
        Command::Ft(a) => cli::ft::run(a),
        Command::Rl(a) => cli::rl::run(a),
        Command::BenchTrain(a) => cli::bench_train::run(a),
        Command::Plot(a) => cli::plot::run(a),
    });
    if let Err(e) = result {
        eprintln!("entmin: error: {e:#}");
        std::process::exit(1);
    }
}
