//! `train`'s output, each event as text or as one JSON line; training's progress as a bar on a
//! terminal (indicatif, on stderr) or as plain lines every tenth of the run otherwise.

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::{flag_name, format_loss, say, thousands};
use makemore::backend::{LossForm, StepLoss, Transfers};
use makemore::optim::Optimizer;
use makemore::train::{Event, TrainConfig, TrainSummary};

/// Prints `train`'s events, with a progress bar while training when a person is watching.
pub struct Printer<'a> {
    config: &'a TrainConfig,
    json: bool,
    /// Stdout and stderr are terminals, and neither --quiet nor --json.
    use_bar: bool,
    bar: Option<ProgressBar>,
    first_step: usize,
}

impl Printer<'_> {
    pub fn new(config: &TrainConfig, json: bool, quiet: bool) -> Printer<'_> {
        let terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        Printer {
            config,
            json,
            use_bar: terminal && !json && !quiet,
            bar: None,
            first_step: 0,
        }
    }

    /// Prints one finished stage of `train`. JSON has no progress, which is for people watching
    /// (the neural_model line has every loss).
    pub fn event(&mut self, event: &Event) {
        match event {
            Event::TrainingStarted { .. } | Event::Progress { .. } if self.json => {}
            Event::TrainingStarted {
                rows,
                cols,
                first_step,
            } => self.start_training(*rows, *cols, *first_step),
            Event::Progress {
                first_step,
                losses,
                remaining,
                steps_per_second,
            } => self.progress(*first_step, losses, *remaining, *steps_per_second),
            Event::DevLoss { step, loss, best } if !self.json => self.dev_loss(*step, *loss, *best),
            Event::Data { .. } | Event::Split { .. } | Event::CountModel { .. } => {
                data(event, self.config, self.json)
            }
            _ => models(event, self.config, self.json),
        }
    }

    /// The loss before each step: every tenth of the run as a line, or the last one on the bar.
    fn progress(&mut self, first_step: usize, losses: &[StepLoss], remaining: usize, speed: f64) {
        let done = first_step + losses.len() - self.first_step;
        let steps = self.config.steps;
        if let Some(bar) = &self.bar {
            if let Some(last) = losses.last() {
                bar.set_message(format!("loss {:.6}  {speed:.1} steps/s", last.total));
            }
            bar.set_position(done as u64);
            if remaining == 0 {
                bar.finish_and_clear();
            }
        } else {
            for (i, loss) in losses.iter().enumerate() {
                let run_step = first_step + i - self.first_step;
                if run_step.is_multiple_of((steps / 10).max(1)) || run_step + 1 == steps {
                    let (step, data) = (first_step + i, loss.data);
                    say!("  step {step:>5}  loss {:.6}  (data {data:.6})", loss.total);
                }
            }
        }
        if remaining == 0 {
            say!("  {} at {speed:.1} steps/s", steps_text(done));
        }
    }

    /// The neural model's heading (its settings), and the bar or the plain lines' spacing.
    fn start_training(&mut self, rows: usize, cols: usize, first_step: usize) {
        let (options, steps) = (self.config.options, self.config.steps);
        let resumed = match first_step {
            0 => String::new(),
            n => format!(", resumed after step {}", n - 1),
        };
        say!(
            "\nneural model ({rows}x{cols} weights, lr {}, reg {}, {}{resumed}{})",
            options.lr,
            options.reg,
            steps_text(steps),
            form_note(self.config),
        );
        self.first_step = first_step;
        if self.use_bar && steps > 0 {
            let template = "  {bar:30.cyan/blue} step {pos}/{len}  {msg}  {elapsed}";
            let style = ProgressStyle::with_template(template).expect("a valid template");
            self.bar = Some(ProgressBar::new(steps as u64).with_style(style));
        }
    }

    /// The dev loss, above the bar if one is drawn.
    fn dev_loss(&self, step: usize, loss: f64, best: bool) {
        let kept = if best { "  (lowest so far: kept)" } else { "" };
        let line = format!("  dev   {step:>5}  loss {}{kept}", format_loss(loss));
        match &self.bar {
            Some(bar) => bar.suspend(|| say!("{line}")),
            None => say!("{line}"),
        }
    }

    /// Where the run was saved, what crossed between host and device, and how long it took.
    pub fn saved(&self, summary: &TrainSummary, t: Transfers, paths: &[String; 2], s: f64) {
        let [model_path, log_path] = paths;
        let run = &summary.neural;
        if self.json {
            let line = json!({"event": "summary", "count_nll": summary.count_nll,
                "final_loss": run.final_loss.total, "final_data_loss": run.final_loss.data,
                "steps": run.first_step + run.losses.len(), "kept_step": run.kept_step,
                "checkpoint": model_path, "log": log_path,
                "transfers": {"uploads": t.uploads, "upload_bytes": t.upload_bytes,
                    "readbacks": t.readbacks, "readback_bytes": t.readback_bytes},
                "seconds": s});
            say!("{line}");
        } else {
            let kept = run.kept_step.map_or(String::new(), |step| {
                format!(" (the weights after step {step}: the lowest dev loss)")
            });
            let (ups, up, downs) = (t.uploads, bytes(t.upload_bytes), t.readbacks);
            let down = bytes(t.readback_bytes);
            say!("\ntransfers  {ups} uploads ({up}), {downs} readbacks ({down})");
            say!("saved    {model_path}{kept} and {log_path}");
            say!("done in {s:.2} s");
        }
    }
}

/// The data and the count model, as text or as one JSON line.
fn data(event: &Event, config: &TrainConfig, json: bool) {
    match event {
        Event::Data {
            source,
            stats,
            vocab,
            examples,
            context_len,
        } => {
            if json {
                let line = json!({"event": "data", "source": source, "words": stats.words,
                    "shortest": stats.shortest, "longest": stats.longest, "vocab": vocab.to_string(),
                    "vocab_size": vocab.len(), "context": context_len, "examples": examples});
                return say!("{line}");
            }
            let (words, shortest, longest) =
                (thousands(stats.words), stats.shortest, stats.longest);
            say!("data     {words} words from {source}, {shortest} to {longest} characters");
            say!("vocab    {} symbols: {vocab}", vocab.len());
            let examples = thousands(*examples);
            say!("examples {examples} (context of {context_len}, next) pairs");
        }
        Event::Split {
            split,
            words: w,
            examples: e,
        } => {
            if json {
                let line = json!({"event": "split", "split": split.to_string(),
                    "train_words": w[0], "dev_words": w[1], "test_words": w[2],
                    "train_examples": e[0], "dev_examples": e[1], "test_examples": e[2]});
                return say!("{line}");
            }
            let [[w0, w1, w2], [e0, e1, e2]] = [w, e].map(|n| n.map(thousands));
            say!("split    {split}: train {w0} words ({e0} examples), dev {w1} ({e1}), test {w2} ({e2})");
        }
        Event::CountModel {
            nll,
            distinct_pairs,
            most_frequent,
        } => {
            if json {
                let line = json!({"event": "count_model", "smoothing": config.smoothing,
                    "nll": nll.mean(), "impossible_examples": nll.impossible,
                    "distinct_pairs": distinct_pairs,
                    "most_frequent": most_frequent.iter().map(|(p, n)| json!([p, n])).collect::<Vec<_>>()});
                return say!("{line}");
            }
            say!("\ncount model (smoothing {})", config.smoothing);
            let impossible = match nll.impossible {
                0 => String::new(),
                n => format!(" ({} examples have probability 0)", thousands(n as usize)),
            };
            let (mean, examples) = (format_loss(nll.mean()), thousands(nll.examples));
            say!("  mean NLL {mean} over {examples} examples{impossible}");
            let pair = |(p, n): &(String, u32)| format!("{p} {}", thousands(*n as usize));
            let top: Vec<_> = most_frequent.iter().map(pair).collect();
            let (distinct, top) = (thousands(*distinct_pairs), top.join(", "));
            say!("  {distinct} distinct pairs; most frequent: {top}");
        }
        _ => {}
    }
}

/// The neural model, the dev losses, both models by part and the samples, as text or as one
/// JSON line.
fn models(event: &Event, config: &TrainConfig, json: bool) {
    match event {
        Event::NeuralModel {
            rows,
            cols,
            first_step,
            losses,
            final_loss: last,
            count_nll,
        } => {
            if json {
                let line = json!({"event": "neural_model", "rows": rows, "cols": cols,
                    "lr": config.options.lr, "reg": config.options.reg, "first_step": first_step,
                    "grad": flag_name(config.effective_gradient()), "steps": losses.len(),
                    "losses": losses.iter().map(|l| l.total).collect::<Vec<_>>(),
                    "data_losses": losses.iter().map(|l| l.data).collect::<Vec<_>>(),
                    "final_loss": last.total, "final_data_loss": last.data,
                    "loss": flag_name(config.form.loss), "one_hot": config.form.one_hot,
                    "batch_size": config.schedule.batch_size,
                    "optimizer": optimizer_name(config.schedule.optimizer)});
                return say!("{line}");
            }
            let (total, data, count) = (last.total, last.data, format_loss(*count_nll));
            say!("  final       loss {total:.6}  (data {data:.6}); count model {count}");
        }
        Event::DevLoss { step, loss, best } => {
            let line = json!({"event": "dev_loss", "step": step, "loss": loss, "best": best});
            say!("{line}")
        }
        // Both models' mean NLL on each part (`-`, or null, for an empty part).
        Event::Evaluation { count, neural } => {
            if json {
                // serde_json writes None and a non-finite number as null.
                let part = |l: &[Option<f64>; 3]| json!({"train": l[0], "dev": l[1], "test": l[2]});
                let (count, neural) = (part(count), part(neural));
                let line = json!({"event": "evaluation", "count_nll": count, "neural_nll": neural});
                return say!("{line}");
            }
            let part = |x: Option<f64>| x.map_or("-".to_string(), format_loss);
            say!("\nmean NLL by part (both models learned from train only)");
            let (model, train, dev, test) = ("model", "train", "dev", "test");
            say!("  {model:<8} {train:>10} {dev:>10} {test:>10}");
            for (name, l) in [("count", count), ("neural", neural)] {
                let [train, dev, test] = l.map(part);
                say!("  {name:<8} {train:>10} {dev:>10} {test:>10}");
            }
        }
        Event::Samples { model, names } if json => {
            let line = json!({"event": "samples", "model": model, "names": names});
            say!("{line}")
        }
        Event::Samples { model, names } => {
            say!("\nsamples from the {model} model:");
            for name in names {
                say!("  {name}");
            }
        }
        _ => {}
    }
}

/// A byte count for people: `9 KB`, `1.8 MB`.
fn bytes(count: u64) -> String {
    let (mut value, mut unit) = (count as f64, 0);
    while value >= 1000.0 && unit < 4 {
        value /= 1000.0;
        unit += 1;
    }
    let shown = format!("{value:.1}");
    let shown = shown.strip_suffix(".0").unwrap_or(&shown);
    format!("{shown} {}", ["B", "KB", "MB", "GB", "TB"][unit])
}

fn optimizer_name(optimizer: Optimizer) -> &'static str {
    match optimizer {
        Optimizer::Sgd => "sgd",
        Optimizer::AdamW(_) => "adamw",
    }
}

/// ", explicit loss, one-hot, batches of 32, adamw, gradient from examples": what differs from
/// the lecture's settings, and the gradient path.
fn form_note(config: &TrainConfig) -> String {
    let (form, schedule) = (config.form, config.schedule);
    let gradient = flag_name(config.effective_gradient());
    let notes = [
        (form.loss == LossForm::Explicit).then(|| "explicit loss".to_string()),
        form.one_hot.then(|| "one-hot".to_string()),
        (schedule.batch_size > 0).then(|| format!("batches of {}", schedule.batch_size)),
        (schedule.optimizer != Optimizer::Sgd)
            .then(|| optimizer_name(schedule.optimizer).to_string()),
        Some(format!("gradient from {gradient}")),
    ];
    notes.iter().flatten().map(|n| format!(", {n}")).collect()
}

/// "1 step", "2 steps".
fn steps_text(n: usize) -> String {
    match n {
        1 => "1 step".to_string(),
        n => format!("{n} steps"),
    }
}
