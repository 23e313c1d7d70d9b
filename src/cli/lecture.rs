//! `makemore lecture`: the lecture's notebook, chapter by chapter of the video, every figure
//! computed by the library ([`makemore::lecture`]) and printed here.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{format_loss, read_words_held, say, thousands, DeviceFlag, RngFlag};
use makemore::checkpoint::write_atomically;
use makemore::data::builtin_words;
use makemore::lecture::{
    find_chapter, one_hot_png, walk, Chapter, ExampleWalk, LectureConfig, Walk, CHAPTERS,
    NOTEBOOK_STEPS, UNREPRODUCIBLE,
};
use makemore::plot::{CountsFigure, Format};
use makemore::{on_backend, Backend, Chosen};

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
    #[arg(long, value_enum, default_value_t = DeviceFlag::Gpu)]
    device: DeviceFlag,
    /// The generator of W and of the samples (torch: the lecture's, draw for draw).
    #[arg(long, value_enum, default_value_t = RngFlag::Torch)]
    rng: RngFlag,
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
    let only = match &args.chapter {
        Some(arg) => Some(find_chapter(arg).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let (words, source, builtin) = match &args.input {
        Some(path) => {
            let instead = "the lecture holds every example: use a smaller file";
            (
                read_words_held(path, instead)?,
                path.display().to_string(),
                false,
            )
        }
        None => (builtin_words(), "the built-in names".to_string(), true),
    };
    let (mut backend, notice) = Chosen::open(args.device.into())?;
    if let Some(notice) = notice {
        eprintln!("notice: {notice}");
    }
    let config = LectureConfig {
        seed: args.seed,
        rng: args.rng.into(),
        ..LectureConfig::default()
    };
    let walk = on_backend!(&mut backend, |b| walk(b, &words, &source, &config))?;
    let differs = builtin.then_some(
        "these are the built-in names, not the lecture's names.txt: every figure below differs \
         from the video's (run with --input names.txt to follow it)",
    );
    if args.json {
        say!(
            "{}",
            json!({"event": "lecture", "device": on_backend!(&backend, |b| b.describe()), "source": source,
                "words": walk.stats.words, "differs_from_video": differs})
        );
    } else {
        say!("makemore lecture: the notebook makemore_part1_bigrams.ipynb, chapter by chapter");
        say!("device   {}", on_backend!(&backend, |b| b.describe()));
        say!("words    {} ({})", source, thousands(walk.stats.words));
        if let Some(note) = differs {
            say!("note     {note}");
        }
    }
    for chapter in CHAPTERS.iter().filter(|c| only.is_none_or(|o| o == **c)) {
        let figures = figures(chapter.number, &walk, &args.work_dir)?;
        if args.json {
            let mut line = json!({"chapter": chapter.number, "start": chapter.start,
                "title": chapter.title});
            line.as_object_mut().expect("an object").extend(
                figures
                    .into_iter()
                    .filter(|f| !f.key.is_empty())
                    .map(|f| (f.key.to_string(), f.value)),
            );
            say!("{line}");
        } else {
            print_chapter(chapter, &figures);
        }
    }
    Ok(())
}

/// One printed figure: its JSON key and value, and its text line.
struct Figure {
    key: &'static str,
    value: Value,
    text: String,
}

fn figure(key: &'static str, value: Value, text: impl Into<String>) -> Figure {
    Figure {
        key,
        value,
        text: text.into(),
    }
}

/// A line of text with no JSON value.
fn say_line(text: impl Into<String>) -> Figure {
    figure("", Value::Null, text)
}

fn print_chapter(chapter: &Chapter, figures: &[Figure]) {
    say!("\n[{}] {} {}", chapter.number, chapter.start, chapter.title);
    for f in figures {
        say!("  {}", f.text);
    }
}

/// `tensor([0.0000, 0.1377, ...])` with four decimals, as PyTorch prints a float tensor.
fn tensor4(values: &[f32]) -> String {
    let parts: Vec<String> = values.iter().map(|x| format!("{x:.4}")).collect();
    format!("tensor([{}])", parts.join(", "))
}

fn tensor_int<T: std::fmt::Display>(values: &[T]) -> String {
    let parts: Vec<String> = values.iter().map(|x| x.to_string()).collect();
    format!("tensor([{}])", parts.join(", "))
}

fn write_png(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    write_atomically(path, bytes)?;
    Ok(())
}

/// The figures of chapter `number`, computed in `walk` (pictures are written here).
fn figures(number: usize, walk: &Walk, work_dir: &Path) -> anyhow::Result<Vec<Figure>> {
    Ok(match number {
        1 => intro(),
        2 => reading_the_dataset(walk),
        3 => exploring_the_bigrams(walk),
        4 => counting_in_a_dictionary(walk),
        5 => counting_in_a_2d_tensor(walk),
        6 => visualizing_the_bigram_tensor(walk, work_dir)?,
        7 => a_single_dot_token(walk),
        8 => sampling_from_the_model(walk),
        9 => vectorized_normalization(walk),
        10 => loss_function(walk),
        11 => model_smoothing(walk),
        12 => neural_network_intro(),
        13 => creating_the_bigram_dataset(walk),
        14 => one_hot_encodings(walk, work_dir)?,
        15 => one_linear_layer(walk),
        16 => the_softmax(walk),
        17 => five_example_walk(walk),
        18 => vectorized_loss(walk),
        19 => backward_and_update(walk),
        20 => putting_everything_together(walk),
        21 => one_hot_selects_a_row(walk),
        22 => smoothing_as_regularization(walk),
        23 => sampling_from_the_neural_net(walk),
        24 => conclusion(walk),
        _ => unreachable!("chapters are 1 to 24"),
    })
}

/// Chapter 1: what makemore is, and the plan of part 1.
fn intro() -> Vec<Figure> {
    vec![
        say_line(
            "makemore: a character-level language model that makes more names like the ones it \
             reads.",
        ),
        say_line(
            "Part 1 builds the bigram model twice: by counting, then as a one-layer neural net.",
        ),
    ]
}

/// Chapter 2: `words[:10]`, `len(words)` and the shortest and longest word's length.
fn reading_the_dataset(walk: &Walk) -> Vec<Figure> {
    vec![
        figure(
            "first_words",
            json!(walk.first_words),
            format!("words[:10]  {:?}", walk.first_words),
        ),
        figure(
            "words",
            json!(walk.stats.words),
            format!("len(words)  {}", walk.stats.words),
        ),
        figure(
            "shortest",
            json!(walk.stats.shortest),
            format!("min(len(w) for w in words)  {}", walk.stats.shortest),
        ),
        figure(
            "longest",
            json!(walk.stats.longest),
            format!("max(len(w) for w in words)  {}", walk.stats.longest),
        ),
    ]
}

/// Chapter 3: the first word's bigrams, between `<S>` and `<E>`.
fn exploring_the_bigrams(walk: &Walk) -> Vec<Figure> {
    let pairs: Vec<String> = walk
        .first_word_bigrams
        .iter()
        .map(|(a, b)| format!("{a} {b}"))
        .collect();
    vec![figure(
        "first_word_bigrams",
        json!(pairs),
        format!(
            "the bigrams of {:?}: {}",
            walk.first_words[0],
            pairs.join(", ")
        ),
    )]
}

/// Chapter 4: the dictionary of bigram counts, most frequent first (all of them in JSON, the
/// first ten in text).
fn counting_in_a_dictionary(walk: &Walk) -> Vec<Figure> {
    let all: Vec<Value> = walk
        .bigrams
        .iter()
        .map(|(a, b, n)| json!([a, b, n]))
        .collect();
    let top: Vec<String> = walk
        .bigrams
        .iter()
        .take(10)
        .map(|(a, b, n)| format!("(('{a}', '{b}'), {n})"))
        .collect();
    let mut out = vec![figure(
        "bigrams",
        json!(all),
        format!(
            "sorted(b.items(), key = lambda kv: -kv[1]): {} bigrams; the first 10:",
            walk.bigrams.len()
        ),
    )];
    for line in top {
        out.push(say_line(format!("  {line}")));
    }
    out
}

/// Chapter 5: N, the V x V tensor of counts, and the number of bigrams it holds.
fn counting_in_a_2d_tensor(walk: &Walk) -> Vec<Figure> {
    let v = walk.vocab.len();
    let total: u64 = walk.counts.iter().map(|&n| n as u64).sum();
    vec![figure(
        "counts_shape",
        json!([v, v]),
        format!(
            "N: {v} x {v} int32 counts (count_pairs on the device), {} bigrams in all",
            thousands(total as usize)
        ),
    )]
}

/// Chapter 6: `plt.imshow(N)`, written to `work_dir/lecture_counts.png`.
fn visualizing_the_bigram_tensor(walk: &Walk, work_dir: &Path) -> anyhow::Result<Vec<Figure>> {
    let path = work_dir.join("lecture_counts.png");
    let counts_figure = CountsFigure {
        counts: &walk.counts,
        vocab: &walk.vocab,
        context_len: 1,
        source: &walk.source,
    };
    write_png(&path, &counts_figure.render(Format::Png)?)?;
    Ok(vec![figure(
        "counts_png",
        json!(path.display().to_string()),
        format!(
            "plt.imshow(N, cmap='Blues') with every cell labelled: wrote {}",
            path.display()
        ),
    )])
}

/// Chapter 7: `stoi`, with `.` (index 0) in place of `<S>` and `<E>`.
fn a_single_dot_token(walk: &Walk) -> Vec<Figure> {
    vec![figure(
        "vocab",
        json!(walk.vocab.to_string()),
        format!("stoi: '.' = 0, then the sorted characters: {}", walk.vocab),
    )]
}

/// Chapter 8: the first row of N, `p = N[0] / N[0].sum()`, and PyTorch's generator drawing
/// from it and from `torch.rand(3)` normalized.
fn sampling_from_the_model(walk: &Walk) -> Vec<Figure> {
    let v = walk.vocab.len();
    vec![
        figure(
            "first_row",
            json!(walk.counts[..v]),
            format!("N[0]  {}", tensor_int(&walk.counts[..v])),
        ),
        say_line(format!("not as saved: {}", UNREPRODUCIBLE[0].1)),
        figure(
            "first_row_probs",
            json!(walk.first_row_probs),
            format!("p = N[0] / N[0].sum()  {}", tensor4(&walk.first_row_probs)),
        ),
        figure(
            "first_draw",
            json!(walk.first_draw.to_string()),
            format!(
                "itos[torch.multinomial(p, num_samples=1, generator=g)]  '{}'",
                walk.first_draw
            ),
        ),
        figure(
            "rand3",
            json!(walk.rand3),
            format!("torch.rand(3, generator=g)  {}", tensor4(&walk.rand3)),
        ),
        figure(
            "rand3_normalized",
            json!(walk.rand3_normalized),
            format!("p / p.sum()  {}", tensor4(&walk.rand3_normalized)),
        ),
        figure(
            "draws",
            json!(walk.draws),
            format!(
                "torch.multinomial(p, num_samples=100, replacement=True, generator=g)  {}",
                tensor_int(&walk.draws)
            ),
        ),
        figure("rand3_shape", json!([3]), "p.shape  torch.Size([3])"),
    ]
}

/// Chapter 9: P = (N + 1) / its row sums, broadcast: the shapes of the division, and five
/// names sampled from P.
fn vectorized_normalization(walk: &Walk) -> Vec<Figure> {
    let v = walk.vocab.len();
    vec![
        figure(
            "probs_shape",
            json!([v, v]),
            format!("P.shape  torch.Size([{v}, {v}])"),
        ),
        figure(
            "row_sums_keepdim_shape",
            json!([v, 1]),
            format!("P.sum(1, keepdim=True).shape  torch.Size([{v}, 1])"),
        ),
        figure(
            "row_sums_shape",
            json!([v]),
            format!("P.sum(1).shape  torch.Size([{v}])"),
        ),
        figure(
            "count_names",
            json!(walk.count_names),
            format!(
                "P = (N+1) / row sums (normalize_rows on the device); five names: {}",
                walk.count_names.join(" ")
            ),
        ),
    ]
}

/// Chapter 10: the log likelihood of the n bigrams, sum log P[x, y]; nll = -log_likelihood;
/// the loss is nll / n.
fn loss_function(walk: &Walk) -> Vec<Figure> {
    let n = walk.examples as f64;
    vec![
        figure(
            "log_likelihood",
            json!(-walk.mean_nll * n),
            format!("log_likelihood  {:.4}", -walk.mean_nll * n),
        ),
        figure(
            "nll",
            json!(walk.mean_nll * n),
            format!("nll  {:.4}", walk.mean_nll * n),
        ),
        figure(
            "mean_nll",
            json!(walk.mean_nll),
            format!(
                "nll/n  {} (over {} bigrams, nll_gather on the device)",
                format_loss(walk.mean_nll),
                thousands(walk.examples)
            ),
        ),
        say_line(format!("not as saved: {}", UNREPRODUCIBLE[1].1)),
    ]
}

/// Chapter 11: "andrejq" under P = (N + 1), and under P = N, where the unseen pair "jq" has
/// probability 0 and so an infinite NLL.
fn model_smoothing(walk: &Walk) -> Vec<Figure> {
    match walk.andrejq {
        Some((ll, n, unsmoothed)) => {
            // nll = -log likelihood, and the loss is nll / n.
            let mean_nll = -ll / n as f64;
            let unsmoothed_json = if unsmoothed.is_finite() {
                json!(unsmoothed)
            } else {
                Value::Null
            };
            vec![
                figure(
                    "andrejq",
                    json!({"log_likelihood": ll, "nll": -ll, "mean_nll": mean_nll, "bigrams": n}),
                    format!(
                        "andrejq with P = (N+1): log likelihood {ll:.4}, nll {:.4}, nll/n \
                         {mean_nll:.4} over {n} bigrams",
                        -ll
                    ),
                ),
                figure(
                    "andrejq_unsmoothed",
                    unsmoothed_json,
                    format!(
                        "with P = N (no fake counts): nll/n {} ('jq' never occurs: probability 0)",
                        format_loss(unsmoothed)
                    ),
                ),
            ]
        }
        None => vec![say_line(
            "andrejq: not in this vocabulary (a letter of it never occurs in the words)",
        )],
    }
}

/// Chapter 12: part 2 begins.
fn neural_network_intro() -> Vec<Figure> {
    vec![say_line(
        "From here on the same model is a neural net: W, 27 x 27, trained by gradient descent.",
    )]
}

/// Chapter 13: the first word's examples, inputs xs and labels ys.
fn creating_the_bigram_dataset(walk: &Walk) -> Vec<Figure> {
    let pairs: Vec<String> = walk
        .xs
        .iter()
        .zip(&walk.ys)
        .map(|(&x, &y)| format!("{} {}", walk.vocab.char(x), walk.vocab.char(y)))
        .collect();
    vec![
        figure(
            "first_word_pairs",
            json!(pairs),
            format!(
                "the examples of {:?}: {}",
                walk.first_words[0],
                pairs.join(", ")
            ),
        ),
        figure(
            "xs",
            json!(walk.xs),
            format!("xs  {}", tensor_int(&walk.xs)),
        ),
        figure(
            "ys",
            json!(walk.ys),
            format!("ys  {}", tensor_int(&walk.ys)),
        ),
    ]
}

/// Chapter 14: `xenc = F.one_hot(xs)`: row i is 1 in column xs[i] and 0 elsewhere; its picture
/// is written to `work_dir/lecture_one_hot.png`.
fn one_hot_encodings(walk: &Walk, work_dir: &Path) -> anyhow::Result<Vec<Figure>> {
    let v = walk.vocab.len();
    let rows: Vec<Vec<u8>> = walk
        .xs
        .iter()
        .map(|&x| (0..v).map(|j| u8::from(j == x as usize)).collect())
        .collect();
    let mut out = vec![figure(
        "xenc",
        json!(rows),
        "xenc = F.one_hot(xs, num_classes=27).float():",
    )];
    for row in &rows {
        let cells: Vec<String> = row.iter().map(|b| format!("{b}.")).collect();
        out.push(say_line(format!("  [{}]", cells.join(" "))));
    }
    out.push(figure(
        "xenc_shape",
        json!([rows.len(), v]),
        format!("xenc.shape  torch.Size([{}, {v}])", rows.len()),
    ));
    out.push(figure(
        "xenc_dtype",
        json!("torch.float32"),
        "xenc.dtype  torch.float32",
    ));
    let path = work_dir.join("lecture_one_hot.png");
    write_png(&path, &one_hot_png(&walk.xs, v, 20)?)?;
    out.push(figure(
        "one_hot_png",
        json!(path.display().to_string()),
        format!("plt.imshow(xenc): wrote {}", path.display()),
    ));
    Ok(out)
}

/// Chapter 15: the logits `xenc @ W` of the seeded W; row i is W[xs[i]].
fn one_linear_layer(walk: &Walk) -> Vec<Figure> {
    let v = walk.vocab.len();
    let logits: Vec<Vec<f32>> = walk
        .xs
        .iter()
        .map(|&x| walk.initial_weights[x as usize * v..(x as usize + 1) * v].to_vec())
        .collect();
    vec![
        figure(
            "logits",
            json!(logits),
            "xenc @ W with the seeded W = torch.randn((27, 27), generator=g), first row:",
        ),
        say_line(format!("  {}", tensor4(&logits[0]))),
        say_line(format!("not as saved: {}", UNREPRODUCIBLE[2].1)),
    ]
}

/// Chapter 16: probs = softmax(logits) = exp(logits) / exp(logits).sum(1): each row sums to 1.
fn the_softmax(walk: &Walk) -> Vec<Figure> {
    let v = walk.vocab.len();
    let first = &walk.first_word_walk[0].probs;
    let sum: f32 = first.iter().sum();
    vec![
        figure(
            "probs_first_row",
            json!(first),
            format!(
                "probs[0] = softmax(W[xs[0]]) (softmax_rows on the device)  {}",
                tensor4(first)
            ),
        ),
        figure(
            "probs_first_row_shape",
            json!([v]),
            format!("probs[0].shape  torch.Size([{v}])"),
        ),
        figure(
            "probs_first_row_sum",
            json!(sum),
            format!("probs[0].sum()  {sum:.4}"),
        ),
        figure(
            "probs_shape",
            json!([walk.xs.len(), v]),
            format!("probs.shape  torch.Size([{}, {v}])", walk.xs.len()),
        ),
        say_line(format!(
            "not as saved: the notebook's probs and probs[0] (cells 506, 509): {}",
            UNREPRODUCIBLE[3].1
        )),
    ]
}

/// Chapter 17: the first word through the net, example by example: the probability of each
/// label, its log and -log; the loss is the mean of the -logs.
fn five_example_walk(walk: &Walk) -> Vec<Figure> {
    let c = |i: u32| walk.vocab.char(i);
    let examples: Vec<Value> = walk
        .first_word_walk
        .iter()
        .map(|e| {
            json!({
        "input": e.input, "label": e.label, "bigram": format!("{}{}", c(e.input), c(e.label)),
        "probs": e.probs, "prob": e.prob, "log_likelihood": e.log_likelihood,
        "nll": -e.log_likelihood})
        })
        .collect();
    let mut out = vec![figure(
        "examples",
        json!(examples),
        "the first word through the net, example by example:",
    )];
    for (i, e) in walk.first_word_walk.iter().enumerate() {
        out.extend(example_lines(walk, i + 1, e));
    }
    out.push(figure(
        "mean_nll",
        json!(walk.first_word_mean_nll),
        format!(
            "average negative log likelihood, i.e. loss = {}",
            f64::from(walk.first_word_mean_nll)
        ),
    ));
    out
}

/// What the notebook's cell 560 prints for bigram example `number` (counted from 1).
fn example_lines(walk: &Walk, number: usize, e: &ExampleWalk) -> Vec<Figure> {
    let c = |i: u32| walk.vocab.char(i);
    vec![
        say_line(format!(
            "bigram example {}: {}{} (indexes {},{})",
            number,
            c(e.input),
            c(e.label),
            e.input,
            e.label
        )),
        say_line(format!("  input to the neural net: {}", e.input)),
        say_line(format!(
            "  output probabilities from the neural net: {}",
            tensor4(&e.probs)
        )),
        say_line(format!("  label (actual next character): {}", e.label)),
        say_line(format!(
            "  probability assigned by the net to the correct character: {}",
            f64::from(e.prob)
        )),
        say_line(format!("  log likelihood: {}", f64::from(e.log_likelihood))),
        say_line(format!(
            "  negative log likelihood: {}",
            -f64::from(e.log_likelihood)
        )),
    ]
}

/// Chapter 18: loss = -probs[torch.arange(n), ys].log().mean(), all examples at once.
fn vectorized_loss(walk: &Walk) -> Vec<Figure> {
    let loss = walk.first_word_losses[0];
    vec![figure(
        "loss",
        json!(loss),
        format!(
            "loss = -probs[torch.arange({}), ys].log().mean()  {loss:.7} (loss_and_gradient on \
             the device)",
            walk.xs.len()
        ),
    )]
}

/// Chapter 19: gradient descent on the first word's examples, W -= 0.1 * dloss/dW: the loss
/// before each update and after the last.
fn backward_and_update(walk: &Walk) -> Vec<Figure> {
    let mut out = vec![figure(
        "losses",
        json!(walk.first_word_losses),
        "W.data += -0.1 * W.grad on the first word's examples, the loss before each update:",
    )];
    for (i, loss) in walk.first_word_losses.iter().enumerate() {
        out.push(say_line(format!("  after {i} updates  {loss:.7}")));
    }
    out.push(say_line(format!(
        "the notebook's print(loss.item()) (cell 603) was run after {} updates",
        walk.first_word_losses.len() - 1
    )));
    out
}

/// Chapter 20: the full batch, W -= 50 * dloss/dW with loss = mean NLL + 0.01 * mean(W^2):
/// the losses of every step (JSON) and of a few (text).
fn putting_everything_together(walk: &Walk) -> Vec<Figure> {
    let mut out = vec![figure(
        "examples",
        json!(walk.examples),
        format!("number of examples:  {}", walk.examples),
    )];
    let totals: Vec<f64> = walk.losses.iter().map(|l| l.total).collect();
    out.push(figure(
        "full_losses",
        json!(totals),
        "W.data += -50 * W.grad, loss = mean NLL + 0.01 * (W**2).mean() (train_counts on the \
         device):",
    ));
    let last = walk.losses.len() - 1;
    for step in [0, 1, 2, 10, 50, 100, 200, NOTEBOOK_STEPS - 1, last] {
        if step <= last {
            out.push(say_line(format!(
                "  after {step:3} updates  {:.7}",
                walk.losses[step].total
            )));
        }
    }
    out.push(say_line(format!(
        "the notebook's last print (cell 716) was its loss before update {NOTEBOOK_STEPS}; {}",
        UNREPRODUCIBLE[5].1
    )));
    out
}

/// Chapter 21: one_hot(x) @ W is row x of W.
fn one_hot_selects_a_row(walk: &Walk) -> Vec<Figure> {
    let v = walk.vocab.len();
    let x = walk.xs[0] as usize;
    vec![figure(
        "selected_row",
        json!(walk.initial_weights[x * v..x * v + 5]),
        format!(
            "(xenc @ W)[0] is W[{x}]: {} ...",
            tensor4(&walk.initial_weights[x * v..x * v + 5])
        ),
    )]
}

/// Chapter 22: the final loss split into its data term (mean NLL) and its regularization
/// 0.01 * mean(W^2), the neural net's counterpart of the fake counts.
fn smoothing_as_regularization(walk: &Walk) -> Vec<Figure> {
    let last = walk.losses[walk.losses.len() - 1];
    vec![figure(
        "final_loss",
        json!({"total": last.total, "data": last.data, "reg": last.total - last.data}),
        format!(
            "after {} updates: loss {:.6} = data {:.6} + 0.01 * mean(W^2) {:.6}",
            walk.losses.len() - 1,
            last.total,
            last.data,
            last.total - last.data
        ),
    )]
}

/// Chapter 23: five names sampled from softmax(W) of the trained W.
fn sampling_from_the_neural_net(walk: &Walk) -> Vec<Figure> {
    vec![figure(
        "neural_names",
        json!(walk.neural_names),
        format!(
            "five names from softmax(W) after {} updates: {}",
            walk.losses.len() - 1,
            walk.neural_names.join(" ")
        ),
    )]
}

/// Chapter 24: the count model's loss beside the neural net's, and the notebook's figures that
/// no run reproduces, with the reason.
fn conclusion(walk: &Walk) -> Vec<Figure> {
    let last = walk.losses[walk.losses.len() - 1];
    let notes: Vec<Value> = UNREPRODUCIBLE
        .iter()
        .map(|(what, why)| json!({"figure": what, "reason": why}))
        .collect();
    let mut out = vec![
        figure(
            "count_nll",
            json!(walk.mean_nll),
            format!("count model (N+1): nll/n {}", format_loss(walk.mean_nll)),
        ),
        figure(
            "neural_nll",
            json!(last.data),
            format!(
                "neural net: data loss {:.6}: the same model, learned by gradient descent",
                last.data
            ),
        ),
        figure(
            "unreproducible",
            json!(notes),
            "The notebook's figures that no run can reproduce to the digits shown (the rest are \
             reproduced with --input names.txt and --rng torch):",
        ),
    ];
    for (what, why) in UNREPRODUCIBLE {
        out.push(say_line(format!("  {what}: {why}")));
    }
    out
}
