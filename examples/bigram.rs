//! The lecture in one file: "building makemore" part 1, the bigram model counted and then
//! trained by gradient descent, through the library's public API. Every kernel runs on the GPU
//! (on the CPU reference when no adapter exists); the update `W -= lr * grad` is one line on
//! the host, as in the lecture's loop.
//!
//!     cargo run --release --example bigram
//!
//! Each line sits under the lecture's line or the formula it computes. It prints what
//! `makemore train` prints on the built-in names, in short: the same numbers and the same names.

use makemore::data::{builtin_words, Examples, Vocab};
use makemore::sample::sample_names;
use makemore::{on_backend, Backend, Chosen, DeviceChoice, RngKind, StepLoss, TrainOptions};

/// The lecture's seed: `g = torch.Generator().manual_seed(2147483647)`.
const SEED: u64 = 2147483647;
/// Gradient-descent steps: `for k in range(100):`.
const STEPS: usize = 100;
/// The update and the penalty: `W.data += -50 * W.grad`, `loss = ... + 0.01*(W**2).mean()`.
const SGD: TrainOptions = TrainOptions {
    lr: 50.0,
    reg: 0.01,
};
/// Names drawn from each model: `for i in range(10):`.
const NAMES: usize = 10;

/// What the lecture prints, in the order it prints it.
pub struct Lecture {
    pub vocab: Vocab,
    pub examples: usize,
    pub count_nll: f64,
    pub losses: Vec<StepLoss>,
    pub final_loss: StepLoss,
    pub count_names: Vec<String>,
    pub neural_names: Vec<String>,
}

/// The whole lecture on one device.
pub fn lecture<B: Backend>(device: &mut B) -> anyhow::Result<Lecture> {
    // words = open('names.txt', 'r').read().splitlines()
    let words = builtin_words();

    // chars = sorted(list(set(''.join(words)))); stoi = {s:i+1 for i,s in enumerate(chars)}
    // stoi['.'] = 0
    let vocab = Vocab::from_words(&words);
    let v = vocab.len();

    // for w in words: chs = ['.'] + list(w) + ['.']
    //   for ch1, ch2 in zip(chs, chs[1:]): xs.append(stoi[ch1]); ys.append(stoi[ch2])
    let pairs = Examples::encode(&words, &vocab, 1)?;
    // xs, ys = torch.tensor(xs), torch.tensor(ys): uploaded once, used by every kernel below
    let xs_ys = device.load(&pairs)?;

    // N = torch.zeros((27, 27), dtype=torch.int32); N[ix1, ix2] += 1
    let n = device.count_pairs(&xs_ys)?;

    // P = (N+1).float(); P /= P.sum(1, keepdims=True)
    let p = device.normalize_rows(&n, v, 1.0)?;

    // log_likelihood += torch.log(P[ix1, ix2]); nll = -log_likelihood / len(xs)
    let count_nll = device.mean_nll(&p, &xs_ys)?.mean();

    // W = torch.randn((27, 27), generator=g, requires_grad=True)
    let mut w = RngKind::Std.standard_normal(v * v, SEED);

    let mut losses = Vec::with_capacity(STEPS);
    for _k in 0..STEPS {
        // logits = xenc @ W; counts = logits.exp(); probs = counts / counts.sum(1, keepdims=True)
        // loss = -probs[torch.arange(num), ys].log().mean() + 0.01*(W**2).mean()
        // loss.backward(): grad[x, y] = (c_x softmax(W[x])[y] - N[x, y]) / n + 2 reg W / |W|,
        //   the sum over the examples grouped by their pair (c_x: the examples of context x)
        let (loss, grad) = device.count_loss_and_gradient(&w, &xs_ys, SGD.reg)?;
        losses.push(loss);

        // W.data += -50 * W.grad
        for (w, g) in w.iter_mut().zip(&grad) {
            *w -= SGD.lr * g;
        }
    }
    // print(loss.item()) once more, after the last update
    let (final_loss, _) = device.count_loss_and_gradient(&w, &xs_ys, SGD.reg)?;

    // p = P[ix]; ix = torch.multinomial(p, num_samples=1, replacement=True, generator=g).item()
    //   until ix == 0, one character at a time, from a fresh g for each model
    let count_names = sample_names(&p, &vocab, NAMES, SEED, RngKind::Std);

    // p = softmax(W[ix]) = W[ix].exp() / W[ix].exp().sum(): every row at once
    let neural_p = device.softmax_rows(&w, v)?;
    let neural_names = sample_names(&neural_p, &vocab, NAMES, SEED, RngKind::Std);

    Ok(Lecture {
        vocab,
        examples: pairs.len(),
        count_nll,
        losses,
        final_loss,
        count_names,
        neural_names,
    })
}

fn main() -> anyhow::Result<()> {
    let (mut device, notice) = Chosen::open(DeviceChoice::Gpu)?;
    if let Some(notice) = notice {
        eprintln!("notice: {notice}");
    }
    println!("device   {}", on_backend!(&device, |b| b.describe()));
    let lecture = on_backend!(&mut device, |b| lecture(b))?;
    println!(
        "vocab    {} symbols: {}",
        lecture.vocab.len(),
        lecture.vocab
    );
    println!("examples {} (previous, next) pairs", lecture.examples);
    println!("count model: mean NLL {:.6}", lecture.count_nll);
    for (k, loss) in lecture.losses.iter().enumerate() {
        if k % 10 == 0 || k + 1 == STEPS {
            println!(
                "  step {k:>3}  loss {:.6}  (data {:.6})",
                loss.total, loss.data
            );
        }
    }
    let last = lecture.final_loss;
    println!(
        "  final     loss {:.6}  (data {:.6})",
        last.total, last.data
    );
    println!("count model names:  {}", lecture.count_names.join(" "));
    println!("neural model names: {}", lecture.neural_names.join(" "));
    Ok(())
}
