//! `makemore lecture`: the notebook chapter by chapter of the video, every figure computed by
//! [`makemore::tools::lecture::walk`] and printed as text or as one JSON object per chapter.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{format_loss, read_words_held, say, thousands};
use makemore::checkpoint::write_atomically;
use makemore::data::{builtin_words, WordStats};
use makemore::tools::lecture::{
    chapters, find_chapter, one_hot_png, sorted_bigrams, token, unreproducible, walk, Walk,
    NOTEBOOK_STEPS,
};
use makemore::tools::plot::{CountsFigure, Format};
use makemore::torch_rng::TorchGenerator;
use makemore::{on_backend, Backend, Chosen, DeviceChoice, RngKind};

pub const EXAMPLE: &str = "Examples:
  makemore lecture --input names.txt               # the whole notebook, as the video shows it
  makemore lecture --input names.txt --chapter 8   # one chapter, by number
  makemore lecture --chapter softmax               # or by a word of its title
  makemore lecture --device cpu --json             # the CPU reference, one JSON line per chapter

Chapters (the video's):
   1 intro                          13 creating the bigram dataset
   2 reading the dataset            14 one-hot encodings
   3 exploring the bigrams          15 the \"neural net\": one linear layer
   4 counting in a dictionary       16 the softmax
   5 counting in a 2D tensor        17 summary (the five-example walk)
   6 visualizing the bigram tensor  18 vectorized loss
   7 a single . token               19 backward and update
   8 sampling from the model        20 putting everything together
   9 vectorized normalization       21 note 1: one-hot selects a row
  10 loss function                  22 note 2: smoothing as regularization
  11 model smoothing                23 sampling from the neural net
  12 PART 2: the neural network     24 conclusion";

#[derive(clap::Args)]
pub struct Args {
    /// File of words, one per line: the lecture's names.txt reproduces its figures
    /// [default: the built-in names, whose figures differ from the video's]
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// One chapter only: its number (1-24) or a word of its title [default: all]
    #[arg(long, value_name = "N|NAME")]
    chapter: Option<String>,
    /// Where the arithmetic runs.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Gpu)]
    device: DeviceChoice,
    /// The generator of W and of the samples (torch: the lecture's, draw for draw).
    #[arg(long, value_enum, default_value_t = RngKind::Torch)]
    rng: RngKind,
    /// Seed of every `torch.Generator().manual_seed(...)` cell.
    #[arg(long, default_value_t = 2147483647)]
    seed: u64,
    /// Directory for the pictures (the count heatmap, the one-hot image).
    #[arg(long, value_name = "DIR", default_value = "out")]
    work_dir: PathBuf,
    /// One JSON object per chapter instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let only = args.chapter.as_deref().map(find_chapter).transpose()?;
    let (words, source) = match &args.input {
        Some(path) => {
            let instead = "the lecture holds every example: use a smaller file";
            (read_words_held(path, instead)?, path.display().to_string())
        }
        None => (builtin_words(), "the built-in names".to_string()),
    };
    let (mut backend, notice) = Chosen::open(args.device)?;
    notice.iter().for_each(|n| eprintln!("notice: {n}"));
    let (seed, rng) = (args.seed, args.rng);
    let w = on_backend!(&mut backend, |b| walk(b, &words, &source, seed, rng))?;
    let (device, n) = (on_backend!(&backend, |b| b.describe()), words.len());
    let differs = args.input.is_none().then_some(
        "these are the built-in names, not the lecture's names.txt: every figure below differs \
         from the video's (run with --input names.txt to follow it)",
    );
    if args.json {
        let head = json!({"event": "lecture", "device": device, "source": source, "words": n,
            "differs_from_video": differs});
        say!("{head}");
    } else {
        say!("makemore lecture: the notebook makemore_part1_bigrams.ipynb, chapter by chapter");
        say!("device   {device}");
        say!("words    {source} ({})", thousands(n));
        if let Some(note) = differs {
            say!("note     {note}");
        }
    }
    for c in chapters().filter(|c| only.is_none_or(|o| o == *c)) {
        let json = json!({"chapter": c.number, "start": c.start, "title": c.title});
        let (dir, text) = (&args.work_dir, vec![]);
        let p = &mut Page { json, text, dir };
        match c.number {
            1..=7 => the_dataset(c.number, &w, p)?,
            8..=11 => the_count_model(c.number, &w, p),
            12..=17 => the_neural_net(c.number, &w, p)?,
            _ => its_training(c.number, &w, p),
        }
        if args.json {
            say!("{}", p.json);
        } else {
            say!("\n[{}] {} {}", c.number, c.start, c.title);
            p.text.iter().for_each(|line| say!("  {line}"));
        }
    }
    Ok(())
}

/// A chapter's figures, each a JSON value under its key and a line of text; `dir` for pictures.
struct Page<'a> {
    json: Value,
    text: Vec<String>,
    dir: &'a Path,
}

impl Page<'_> {
    fn fig(&mut self, key: &str, value: impl Into<Value>, text: impl Display) {
        self.json[key] = value.into();
        self.say(text);
    }

    /// A line of text only.
    fn say(&mut self, text: impl Display) {
        self.text.push(text.to_string());
    }

    /// `label  value`.
    fn show<T: Display + Into<Value>>(&mut self, key: &str, label: &str, value: T) {
        let text = format!("{label}  {value}");
        self.fig(key, value, text);
    }

    /// `label  tensor([...])`.
    fn tensor<T: Display + Clone + Into<Value>>(&mut self, key: &str, label: &str, values: &[T]) {
        self.fig(key, values, format!("{label}  {}", tensor(values)));
    }

    /// `label  torch.Size([...])`.
    fn shape(&mut self, key: &str, label: &str, dims: &[usize]) {
        self.fig(key, dims, format!("{label}  torch.Size({dims:?})"));
    }

    /// `what: wrote DIR/FILE`, for a picture written there.
    fn picture(&mut self, key: &str, what: &str, file: &str, png: &[u8]) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.dir)?;
        let path = self.dir.join(file);
        write_atomically(&path, png)?;
        let path = path.display().to_string();
        self.fig(key, path.clone(), format!("{what}: wrote {path}"));
        Ok(())
    }
}

/// `tensor([0.0000, 0.1377, ...])`, as PyTorch prints a tensor: floats with four decimals.
fn tensor<T: Display>(values: &[T]) -> String {
    let parts: Vec<String> = values.iter().map(|x| format!("{x:.4}")).collect();
    format!("tensor([{}])", parts.join(", "))
}

/// Why figure `i` of the notebook cannot be reproduced.
fn why(i: usize) -> &'static str {
    unreproducible().nth(i).expect("listed").1
}

/// Chapters 1-7: the words, their bigrams, N and its picture, and `.` in place of `<S>`, `<E>`.
fn the_dataset(number: usize, w: &Walk, p: &mut Page) -> anyhow::Result<()> {
    let (v, s, first) = (w.vocab.len(), WordStats::of(w.words), &w.words[0]);
    let tok = |i, dot| token(&w.vocab, i, dot);
    match number {
        1 => {
            p.say("makemore: a character-level language model that makes more names like the ones it reads.");
            p.say("Part 1 builds the bigram model twice: by counting, then as a one-layer neural net.");
        }
        2 => {
            let words = &w.words[..w.words.len().min(10)];
            p.fig("first_words", words, format!("words[:10]  {words:?}"));
            p.show("words", "len(words)", s.words);
            p.show("shortest", "min(len(w) for w in words)", s.shortest);
            p.show("longest", "max(len(w) for w in words)", s.longest);
        }
        3 => {
            let pairs = w.first.contexts.iter().zip(&w.first.targets);
            let pairs = pairs.map(|(&x, &y)| format!("{} {}", tok(x, "<S>"), tok(y, "<E>")));
            let pairs: Vec<String> = pairs.collect();
            let text = format!("the bigrams of {first:?}: {}", pairs.join(", "));
            p.fig("first_word_bigrams", pairs, text);
        }
        4 => {
            let bigrams = sorted_bigrams(&w.all, &w.vocab, &w.counts);
            let n = bigrams.len();
            let all: Vec<Value> = bigrams.iter().map(|(a, b, n)| json!([a, b, n])).collect();
            let dict = "sorted(b.items(), key = lambda kv: -kv[1])";
            let text = format!("{dict}: {n} bigrams; the first 10:");
            p.fig("bigrams", all, text);
            for (a, b, n) in bigrams.iter().take(10) {
                p.say(format!("  (('{a}', '{b}'), {n})"));
            }
        }
        5 => {
            let n = thousands(w.all.len());
            let text = format!(
                "N: {v} x {v} int32 counts (count_pairs on the device), {n} bigrams in all"
            );
            p.fig("counts_shape", [v, v], text);
        }
        6 => {
            let figure = CountsFigure {
                counts: &w.counts,
                vocab: &w.vocab,
                context_len: 1,
                source: w.source,
            };
            let what = "plt.imshow(N, cmap='Blues') with every cell labelled";
            let png = figure.render(Format::Png)?;
            p.picture("counts_png", what, "lecture_counts.png", &png)?;
        }
        _ => {
            let text = format!("stoi: '.' = 0, then the sorted characters: {}", w.vocab);
            p.fig("vocab", w.vocab.to_string(), text);
        }
    }
    Ok(())
}

/// Chapters 8-11: sampling from N[0], P = (N + 1) by rows, its loss, `andrejq` smoothed or not.
fn the_count_model(number: usize, w: &Walk, p: &mut Page) {
    let v = w.vocab.len();
    match number {
        8 => {
            p.tensor("first_row", "N[0]", w.row(&w.counts, 0));
            p.say(format!("not as saved: {}", why(0)));
            p.tensor("first_row_probs", "p = N[0] / N[0].sum()", w.row(&w.raw, 0));
            let draw = TorchGenerator::new(w.seed).multinomial_one(w.row(&w.raw, 0));
            let draw = w.vocab.char(draw as u32);
            let text = format!("itos[torch.multinomial(p, num_samples=1, generator=g)]  '{draw}'");
            p.fig("first_draw", draw.to_string(), text);
            // Cells 19-20: p = torch.rand(3), p / p.sum(), then 100 draws, from one generator.
            let mut g = TorchGenerator::new(w.seed);
            let rand3 = [g.rand_f32(), g.rand_f32(), g.rand_f32()];
            let normalized = rand3.map(|x| x / (rand3[0] + rand3[1] + rand3[2]));
            let draws = g.multinomial(&normalized, 100);
            p.tensor("rand3", "torch.rand(3, generator=g)", &rand3);
            p.tensor("rand3_normalized", "p / p.sum()", &normalized);
            let label = "torch.multinomial(p, num_samples=100, replacement=True, generator=g)";
            p.tensor("draws", label, &draws);
            p.shape("rand3_shape", "p.shape", &[3]);
        }
        9 => {
            p.shape("probs_shape", "P.shape", &[v, v]);
            let keepdim = "P.sum(1, keepdim=True).shape";
            p.shape("row_sums_keepdim_shape", keepdim, &[v, 1]);
            p.shape("row_sums_shape", "P.sum(1).shape", &[v]);
            let names = w.five_names(&w.smoothed);
            let joined = names.join(" ");
            let text = format!(
                "P = (N+1) / row sums (normalize_rows on the device); five names: {joined}"
            );
            p.fig("count_names", names, text);
        }
        10 => {
            // log_likelihood = sum log P[x, y] over the n bigrams; nll = -log_likelihood.
            let (loss, n) = (w.mean_nll, w.all.len());
            let nll = loss * n as f64;
            let ll = -nll;
            p.fig("log_likelihood", ll, format!("log_likelihood  {ll:.4}"));
            p.fig("nll", nll, format!("nll  {nll:.4}"));
            let (shown, n) = (format_loss(loss), thousands(n));
            let text = format!("nll/n  {shown} (over {n} bigrams, nll_gather on the device)");
            p.fig("mean_nll", loss, text);
            p.say(format!("not as saved: {}", why(1)));
        }
        _ => {
            match w.andrejq {
                Some((ll, n, unsmoothed)) => {
                    let (nll, mean_nll) = (-ll, -ll / n as f64);
                    let value = json!({"log_likelihood": ll, "nll": nll, "mean_nll": mean_nll, "bigrams": n});
                    let text = format!("andrejq with P = (N+1): log likelihood {ll:.4}, nll {nll:.4}, nll/n {mean_nll:.4} over {n} bigrams");
                    p.fig("andrejq", value, text);
                    let loss = format_loss(unsmoothed);
                    let text = format!("with P = N (no fake counts): nll/n {loss} ('jq' never occurs: probability 0)");
                    p.fig("andrejq_unsmoothed", unsmoothed, text);
                }
                None => p.say(
                    "andrejq: not in this vocabulary (a letter of it never occurs in the words)",
                ),
            }
        }
    }
}

/// Chapters 12-17: the first word's examples, one-hot, through W and the softmax.
fn the_neural_net(number: usize, w: &Walk, p: &mut Page) -> anyhow::Result<()> {
    let (v, xs, ys) = (w.vocab.len(), &w.first.contexts, &w.first.targets);
    match number {
        12 => p.say(
            "From here on the same model is a neural net: W, 27 x 27, trained by gradient descent.",
        ),
        13 => {
            let pair = |(&x, &y)| format!("{} {}", w.vocab.char(x), w.vocab.char(y));
            let pairs: Vec<String> = xs.iter().zip(ys).map(pair).collect();
            let text = format!("the examples of {:?}: {}", w.words[0], pairs.join(", "));
            p.fig("first_word_pairs", pairs, text);
            p.tensor("xs", "xs", xs);
            p.tensor("ys", "ys", ys);
        }
        14 => {
            // xenc = F.one_hot(xs): row i is 1 in column xs[i] and 0 elsewhere.
            let one_hot = |&x: &u32| (0..v).map(|j| u8::from(j == x as usize)).collect();
            let rows: Vec<Vec<u8>> = xs.iter().map(one_hot).collect();
            let what = "xenc = F.one_hot(xs, num_classes=27).float():";
            p.fig("xenc", rows.clone(), what);
            for row in &rows {
                let cells: Vec<String> = row.iter().map(|b| format!("{b}.")).collect();
                p.say(format!("  [{}]", cells.join(" ")));
            }
            p.shape("xenc_shape", "xenc.shape", &[xs.len(), v]);
            p.show("xenc_dtype", "xenc.dtype", "torch.float32");
            let (what, png) = ("plt.imshow(xenc)", one_hot_png(xs, v, 20)?);
            p.picture("one_hot_png", what, "lecture_one_hot.png", &png)?;
        }
        15 => {
            // xenc @ W: row i is W[xs[i]].
            let logits: Vec<&[f32]> = xs.iter().map(|&x| w.row(&w.weights, x)).collect();
            let what =
                "xenc @ W with the seeded W = torch.randn((27, 27), generator=g), first row:";
            p.fig("logits", logits.clone(), what);
            p.say(format!("  {}", tensor(logits[0])));
            p.say(format!("not as saved: {}", why(2)));
        }
        16 => {
            // probs = exp(logits) / exp(logits).sum(1): each row sums to 1.
            let probs = w.row(&w.probs, xs[0]);
            let sum: f32 = probs.iter().sum();
            let label = "probs[0] = softmax(W[xs[0]]) (softmax_rows on the device)";
            p.tensor("probs_first_row", label, probs);
            p.shape("probs_first_row_shape", "probs[0].shape", &[v]);
            let text = format!("probs[0].sum()  {sum:.4}");
            p.fig("probs_first_row_sum", sum, text);
            p.shape("probs_shape", "probs.shape", &[xs.len(), v]);
            let cells = "the notebook's probs and probs[0] (cells 506, 509)";
            p.say(format!("not as saved: {cells}: {}", why(3)));
        }
        _ => five_example_walk(w, p),
    }
    Ok(())
}

/// Chapter 17 (cell 560): each example (x, y) of the first word through the net: probs[y] of
/// probs = softmax(W)[x] and its log, in float32; the loss is their mean -log.
fn five_example_walk(w: &Walk, p: &mut Page) {
    let (mut examples, mut lines, mut nlls) = (Vec::new(), Vec::new(), 0f32);
    let pairs = w.first.contexts.iter().zip(&w.first.targets);
    for (number, (&x, &y)) in (1..).zip(pairs) {
        let bigram = format!("{}{}", w.vocab.char(x), w.vocab.char(y));
        let probs = w.row(&w.probs, x);
        let (prob, ll) = (probs[y as usize], probs[y as usize].ln());
        nlls += -ll;
        examples.push(
            json!({"input": x, "label": y, "bigram": bigram, "probs": probs,
            "prob": prob, "log_likelihood": ll, "nll": -ll}),
        );
        let (prob, ll, probs_text) = (f64::from(prob), f64::from(ll), tensor(probs));
        lines.extend([
            format!("bigram example {number}: {bigram} (indexes {x},{y})"),
            format!("  input to the neural net: {x}"),
            format!("  output probabilities from the neural net: {probs_text}"),
            format!("  label (actual next character): {y}"),
            format!("  probability assigned by the net to the correct character: {prob}"),
            format!("  log likelihood: {ll}"),
            format!("  negative log likelihood: {}", -ll),
        ]);
    }
    let text = "the first word through the net, example by example:";
    p.fig("examples", examples, text);
    lines.iter().for_each(|line| p.say(line));
    let loss = nlls / w.first.len() as f32;
    let mean = f64::from(loss);
    let text = format!("average negative log likelihood, i.e. loss = {mean}");
    p.fig("mean_nll", loss, text);
}

/// Chapters 18-24: the loss at once, gradient descent, the trained W's samples, both models.
fn its_training(number: usize, w: &Walk, p: &mut Page) {
    let losses: Vec<f64> = w.first_word_losses.iter().map(|l| l.total).collect();
    let last = w.losses[NOTEBOOK_STEPS];
    match number {
        18 => {
            let (loss, n) = (losses[0], w.first.len());
            let text = format!("loss = -probs[torch.arange({n}), ys].log().mean()  {loss:.7} (loss_and_gradient on the device)");
            p.fig("loss", loss, text);
        }
        19 => {
            let text = "W.data += -0.1 * W.grad on the first word's examples, the loss before each update:";
            p.fig("losses", losses.clone(), text);
            for (i, loss) in losses.iter().enumerate() {
                p.say(format!("  after {i} updates  {loss:.7}"));
            }
            let n = losses.len() - 1;
            let print = "the notebook's print(loss.item()) (cell 603)";
            p.say(format!("{print} was run after {n} updates"));
        }
        20 => {
            p.show("examples", "number of examples:", w.all.len());
            let totals: Vec<f64> = w.losses.iter().map(|l| l.total).collect();
            let text = "W.data += -50 * W.grad, loss = mean NLL + 0.01 * (W**2).mean() (train_counts on the device):";
            p.fig("full_losses", totals, text);
            let notebook = [NOTEBOOK_STEPS - 1, NOTEBOOK_STEPS];
            for step in [0, 1, 2, 10, 50, 100, 200].into_iter().chain(notebook) {
                let loss = w.losses[step].total;
                p.say(format!("  after {step:3} updates  {loss:.7}"));
            }
            p.say(format!("the notebook's last print (cell 716) was its loss before update {NOTEBOOK_STEPS}; {}", why(5)));
        }
        21 => {
            // one_hot(x) @ W is row x of W.
            let x = w.first.contexts[0];
            let row = &w.weights[x as usize * w.vocab.len()..];
            let row = &row[..row.len().min(5)];
            let text = format!("(xenc @ W)[0] is W[{x}]: {} ...", tensor(row));
            p.fig("selected_row", row, text);
        }
        22 => {
            // The data term and the regularization 0.01 * mean(W^2), the fake counts' counterpart.
            let (total, data, reg) = (last.total, last.data, last.total - last.data);
            let value = json!({"total": total, "data": data, "reg": reg});
            let text = format!("after {NOTEBOOK_STEPS} updates: loss {total:.6} = data {data:.6} + 0.01 * mean(W^2) {reg:.6}");
            p.fig("final_loss", value, text);
        }
        23 => {
            let names = w.five_names(&w.trained_probs);
            let (steps, joined) = (NOTEBOOK_STEPS, names.join(" "));
            let text = format!("five names from softmax(W) after {steps} updates: {joined}");
            p.fig("neural_names", names, text);
        }
        // The two models' losses side by side, and the figures no run reproduces.
        _ => {
            let (count, neural) = (format_loss(w.mean_nll), last.data);
            let text = format!("count model (N+1): nll/n {count}");
            p.fig("count_nll", w.mean_nll, text);
            let text = format!(
                "neural net: data loss {neural:.6}: the same model, learned by gradient descent"
            );
            p.fig("neural_nll", neural, text);
            let notes = unreproducible().map(|(what, why)| json!({"figure": what, "reason": why}));
            let text = "The notebook's figures that no run can reproduce to the digits shown (the rest are reproduced with --input names.txt and --rng torch):";
            p.fig("unreproducible", notes.collect::<Vec<_>>(), text);
            unreproducible().for_each(|(what, why)| p.say(format!("  {what}: {why}")));
        }
    }
}
