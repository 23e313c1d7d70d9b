//! The command line: parse the flags, run the library, print what it reports.
//! Each command lives in its own file under `src/cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "makemore",
    version,
    about = "Character-level language models (makemore, part 1) with every kernel in WGSL on wgpu",
    after_help = "Example, the lecture end to end:
  makemore train                    # count, train and sample; saves the run in out/
  makemore sample --num 20          # more names from the saved model
  makemore eval --word andrejq      # how likely the model finds a word, pair by pair
  makemore plot counts              # out/counts.png: the count matrix, as in the lecture"
)]
enum Command {
    /// Count bigrams, train the neural net, print losses and sample names.
    #[command(after_help = cli::train::EXAMPLE)]
    Train(cli::train::Args),
    /// Walk the lecture's notebook chapter by chapter, every figure computed here.
    #[command(after_help = cli::lecture::EXAMPLE)]
    Lecture(cli::lecture::Args),
    /// Draw names from a saved model, sorted into known and new ones.
    #[command(after_help = cli::sample::EXAMPLE)]
    Sample(cli::sample::Args),
    /// Score words with a saved model, pair by pair, as the lecture scores "andrejq".
    #[command(after_help = cli::eval::EXAMPLE)]
    Eval(cli::eval::Args),
    /// Draw the count matrix or the losses of a saved run as PNG or SVG.
    #[command(after_help = cli::plot::EXAMPLE)]
    Plot(cli::plot::Args),
    /// Tune the count model's smoothing or the neural model's reg on dev; score the best on test.
    #[command(after_help = cli::sweep::EXAMPLE)]
    Sweep(cli::sweep::Args),
    /// Time every stage on the GPU and on the CPU: warm-up, repetitions, median and spread.
    #[command(after_help = cli::bench::EXAMPLE)]
    Bench(cli::bench::Args),
    /// Compare every kernel of each GPU adapter with the CPU reference on random data.
    #[command(after_help = cli::check::EXAMPLE)]
    Check(cli::check::Args),
    /// List the GPU adapters wgpu finds (WGPU_BACKEND and WGPU_ADAPTER_NAME choose among them).
    #[command(after_help = cli::adapters::EXAMPLE)]
    Adapters(cli::adapters::Args),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let result = match Command::parse() {
        Command::Train(args) => cli::train::run(&args),
        Command::Lecture(args) => cli::lecture::run(&args),
        Command::Sample(args) => cli::sample::run(&args),
        Command::Eval(args) => cli::eval::run(&args),
        Command::Plot(args) => cli::plot::run(&args),
        Command::Sweep(args) => cli::sweep::run(&args),
        Command::Adapters(args) => cli::adapters::run(&args),
        Command::Bench(args) => cli::bench::run(&args),
        Command::Check(args) => cli::check::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the error and its causes, outermost first, joined by ": ".
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
