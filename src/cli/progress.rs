//! `train`'s text output: each stage as it finishes, and training's progress as a bar on a
//! terminal (indicatif, on stderr) or as plain lines every tenth of the run otherwise.

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressStyle};

use super::{format_loss, say, thousands};
use makemore::backend::{LossForm, Nll, StepLoss, TrainOptions};
use makemore::optim::Optimizer;
use makemore::train::{Event, PartLosses, TrainConfig};

/// Turns events into text, with a progress bar while training when a person is watching.
pub struct Progress {
    /// Draw a bar (stdout and stderr are terminals, and neither --quiet nor --json).
    use_bar: bool,
    bar: Option<ProgressBar>,
    /// Plain lines: print the loss of every `every`-th step of this run.
    every: usize,
    first_step: usize,
    steps: usize,
}

impl Progress {
    pub fn new(json: bool, quiet: bool) -> Progress {
        let terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        Progress {
            use_bar: terminal && !json && !quiet,
            bar: None,
            every: 1,
            first_step: 0,
            steps: 0,
        }
    }

    /// Prints one finished stage of `train`.
    pub fn print_event(&mut self, event: &Event, config: &TrainConfig) {
        match event {
            Event::Data {
                source,
                stats,
                vocab,
                examples,
                context_len,
            } => {
                let words = thousands(stats.words);
                let (shortest, longest) = (stats.shortest, stats.longest);
                say!("data     {words} words from {source}, {shortest} to {longest} characters");
                say!("vocab    {} symbols: {vocab}", vocab.len());
                let examples = thousands(*examples);
                say!("examples {examples} (context of {context_len}, next) pairs");
            }
            Event::Split {
                split,
                words,
                examples,
            } => {
                let [w, e] = [words, examples].map(|n| n.map(thousands));
                say!(
                    "split    {split}: train {} words ({} examples), dev {} ({}), test {} ({})",
                    w[0],
                    e[0],
                    w[1],
                    e[1],
                    w[2],
                    e[2]
                );
            }
            Event::CountModel {
                smoothing,
                nll,
                distinct_pairs,
                most_frequent,
            } => print_count_model(*smoothing, nll, *distinct_pairs, most_frequent),
            Event::TrainingStarted {
                rows,
                cols,
                options,
                first_step,
                steps,
            } => self.start_training(*rows, *cols, options, *first_step, *steps, config),
            Event::Progress {
                first_step,
                losses,
                remaining,
                steps_per_second,
            } => self.print_progress(*first_step, losses, *remaining, *steps_per_second),
            Event::DevLoss { step, loss, best } => self.print_dev_loss(*step, *loss, *best),
            Event::NeuralModel {
                final_loss,
                count_nll,
                ..
            } => say!(
                "  final       loss {:.6}  (data {:.6}); count model {}",
                final_loss.total,
                final_loss.data,
                format_loss(*count_nll)
            ),
            Event::Evaluation { count, neural } => print_evaluation(count, neural),
            Event::Samples { model, names } => {
                say!("\nsamples from the {model} model:");
                for name in names {
                    say!("  {name}");
                }
            }
        }
    }

    /// The neural model's heading (its settings), and the bar or the plain lines' spacing.
    fn start_training(
        &mut self,
        rows: usize,
        cols: usize,
        options: &TrainOptions,
        first_step: usize,
        steps: usize,
        config: &TrainConfig,
    ) {
        let resumed = match first_step {
            0 => String::new(),
            n => format!(", resumed after step {}", n - 1),
        };
        say!(
            "\nneural model ({rows}x{cols} weights, lr {}, reg {}, {steps} steps{resumed}{})",
            options.lr,
            options.reg,
            form_note(config),
        );
        self.every = (steps / 10).max(1);
        self.first_step = first_step;
        self.steps = steps;
        if self.use_bar && steps > 0 {
            let style = ProgressStyle::with_template(
                "  {bar:30.cyan/blue} step {pos}/{len}  {msg}  {elapsed}",
            )
            .expect("a valid template");
            let bar = ProgressBar::new(steps as u64).with_style(style);
            self.bar = Some(bar);
        }
    }

    /// The loss before each step: every `every`-th step as a line, or the last one on the bar.
    fn print_progress(
        &mut self,
        first_step: usize,
        losses: &[StepLoss],
        remaining: usize,
        steps_per_second: f64,
    ) {
        let done = first_step + losses.len() - self.first_step;
        if let Some(bar) = &self.bar {
            if let Some(last) = losses.last() {
                bar.set_message(format!(
                    "loss {:.6}  {steps_per_second:.1} steps/s",
                    last.total
                ));
            }
            bar.set_position(done as u64);
            if remaining == 0 {
                bar.finish_and_clear();
            }
        } else {
            for (i, loss) in losses.iter().enumerate() {
                let run_step = first_step + i - self.first_step;
                if run_step.is_multiple_of(self.every) || run_step + 1 == self.steps {
                    say!(
                        "  step {:>5}  loss {:.6}  (data {:.6})",
                        first_step + i,
                        loss.total,
                        loss.data
                    );
                }
            }
        }
        if remaining == 0 {
            say!("  {done} steps at {steps_per_second:.1} steps/s");
        }
    }

    /// The dev loss, above the bar if one is drawn.
    fn print_dev_loss(&self, step: usize, loss: f64, best: bool) {
        let line = format!(
            "  dev   {step:>5}  loss {}{}",
            format_loss(loss),
            if best { "  (lowest so far: kept)" } else { "" }
        );
        match &self.bar {
            Some(bar) => bar.suspend(|| say!("{line}")),
            None => say!("{line}"),
        }
    }
}

/// The count model's mean NLL and its most frequent pairs.
fn print_count_model(
    smoothing: f32,
    nll: &Nll,
    distinct_pairs: usize,
    most_frequent: &[(String, u32)],
) {
    say!("\ncount model (smoothing {smoothing})");
    let impossible = match nll.impossible {
        0 => String::new(),
        n => format!(" ({} examples have probability 0)", thousands(n as usize)),
    };
    say!(
        "  mean NLL {} over {} examples{impossible}",
        format_loss(nll.mean()),
        thousands(nll.examples)
    );
    let top: Vec<String> = most_frequent
        .iter()
        .map(|(p, n)| format!("{p} {}", thousands(*n as usize)))
        .collect();
    say!(
        "  {} distinct pairs; most frequent: {}",
        thousands(distinct_pairs),
        top.join(", ")
    );
}

/// Both models' mean NLL on each part (`-` for an empty part).
fn print_evaluation(count: &PartLosses, neural: &PartLosses) {
    let part = |x: Option<f64>| x.map_or("-".to_string(), format_loss);
    say!("\nmean NLL by part (both models learned from train only)");
    say!(
        "  {:<8} {:>10} {:>10} {:>10}",
        "model",
        "train",
        "dev",
        "test"
    );
    for (name, l) in [("count", count), ("neural", neural)] {
        say!(
            "  {name:<8} {:>10} {:>10} {:>10}",
            part(l.train),
            part(l.dev),
            part(l.test)
        );
    }
}

pub fn loss_name(loss: LossForm) -> &'static str {
    match loss {
        LossForm::Fused => "fused",
        LossForm::Explicit => "explicit",
    }
}

pub fn optimizer_name(optimizer: Optimizer) -> &'static str {
    match optimizer {
        Optimizer::Sgd => "sgd",
        Optimizer::AdamW(_) => "adamw",
    }
}

/// ", explicit loss, one-hot, batches of 32, adamw, gradient from examples": what differs from
/// the lecture's settings, and the gradient path.
pub fn form_note(config: &TrainConfig) -> String {
    let (form, schedule) = (config.form, config.schedule);
    let notes = [
        (form.loss == LossForm::Explicit).then(|| "explicit loss".to_string()),
        form.one_hot.then(|| "one-hot".to_string()),
        (schedule.batch_size > 0).then(|| format!("batches of {}", schedule.batch_size)),
        (schedule.optimizer != Optimizer::Sgd)
            .then(|| optimizer_name(schedule.optimizer).to_string()),
        Some(format!(
            "gradient from {}",
            config.effective_gradient().name()
        )),
    ];
    notes.iter().flatten().map(|n| format!(", {n}")).collect()
}
