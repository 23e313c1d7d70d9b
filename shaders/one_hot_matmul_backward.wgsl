// one_hot_matmul_backward: the gradient of the one-hot product with respect to W.
//
//   logits = xenc @ W  =>  dW = xenc^T @ dlogits
//   G[r, c] = sum_i xenc[i, r] * dlogits[i, c],   xenc[i, r] = 1 if r = ctx_i else 0
//
// with dlogits[i, c] = softmax(logits_i)[c] - [c = tgt_i] from cross_entropy_backward (run
// with one segment per example). A dense product over all n examples, in their order (adding
// the zeros changes no float sum), so the result is the same on every run. grad_rows turns G
// into the gradient of the mean loss. One thread per weight.

struct Params {
    num_examples: u32,
    num_rows: u32,
    num_cols: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> contexts: array<u32>;
@group(0) @binding(2) var<storage, read> dlogits: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_sums: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_index) local: u32,
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let index = (group_id.x + group_id.y * groups.x) * 64u + local;
    let cols = params.num_cols;
    if (index >= params.num_rows * cols) {
        return;
    }
    let r = index / cols;
    let c = index % cols;
    var sum = 0.0;
    for (var i = 0u; i < params.num_examples; i++) {
        let x = select(0.0, 1.0, contexts[i] == r);
        sum += x * dlogits[i * cols + c];
    }
    grad_sums[index] = sum;
}
