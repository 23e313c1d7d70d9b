// sgd_step: one step of gradient descent.
//
//   W[k] -= lr * grad[k]
//
// The lecture's `W.data += -50 * W.grad`. One thread per weight.
//
// Loop bound per invocation: 0 (no loop)

struct Params {
    num_weights: u32,
    lr: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> grads: array<f32>;
@group(0) @binding(2) var<storage, read_write> weights: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_index) local: u32,
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let k = (group_id.x + group_id.y * groups.x) * 64u + local;
    if (k < params.num_weights) {
        weights[k] -= params.lr * grads[k];
    }
}
