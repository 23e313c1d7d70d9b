// sgd_step: one step of gradient descent.
//
//   W[k] -= lr * grad[k]
//
// The lecture's `W.data += -50 * W.grad`. One thread per weight.
//
// Loop bound per invocation: 0 (no loop)

const THREADS: u32 = 64u;

struct Params { num_weights: u32, lr: f32, _pad0: u32, _pad1: u32 }

@group(0) @binding(1) var<storage> grads: array<f32>;
@group(0) @binding(2) var<storage, read_write> weights: array<f32>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let k = thread_index(id);
    if (k < params.num_weights) {
        weights[k] -= params.lr * grads[k];
    }
}
