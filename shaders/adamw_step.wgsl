// adamw_step: one step of AdamW (decoupled weight decay), as torch.optim.AdamW does it.
//
//   W[k] <- W[k] - lr * wd * W[k]                        (decay, independent of the gradient)
//   m[k] <- beta1 * m[k] + (1 - beta1) * g[k]             (first moment)
//   v[k] <- beta2 * v[k] + (1 - beta2) * g[k]^2           (second moment)
//   W[k] <- W[k] - lr * (m[k] / bc1) / (sqrt(v[k] / bc2) + eps)
//
// with the bias corrections bc1 = 1 - beta1^t and bc2 = 1 - beta2^t of step t (from 1),
// computed on the host. makemore.py's defaults: lr 5e-4, wd 0.01, betas 0.9/0.99, eps 1e-8.
// One thread per weight.
//
// Loop bound per invocation: 0 (no loop)

const THREADS: u32 = 64u;

struct Params { num_weights: u32, _pad0: u32, _pad1: u32, _pad2: u32 }

struct Hyper {
    lr: f32, weight_decay: f32, beta1: f32, beta2: f32,
    eps: f32, bc1: f32, bc2: f32,
}

@group(0) @binding(1) var<storage> hyper: Hyper;
@group(0) @binding(2) var<storage> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let k = thread_index(id);
    if (k >= params.num_weights) {
        return;
    }
    let g = grads[k];
    var w = weights[k];
    w -= hyper.lr * hyper.weight_decay * w;
    let m_k = hyper.beta1 * m[k] + (1.0 - hyper.beta1) * g;
    let v_k = hyper.beta2 * v[k] + (1.0 - hyper.beta2) * g * g;
    m[k] = m_k;
    v[k] = v_k;
    w -= hyper.lr * (m_k / hyper.bc1) / (sqrt(v_k / hyper.bc2) + hyper.eps);
    weights[k] = w;
}
