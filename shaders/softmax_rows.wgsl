// softmax_rows: each row of W as a probability distribution over the next character.
//
//   P[r, c] = exp(W[r, c] - m_r) / sum_c' exp(W[r, c'] - m_r),   m_r = max_c W[r, c]
//
// The lecture's `counts = logits.exp(); probs = counts / counts.sum(1, keepdims=True)` for
// every possible context at once; subtracting the row maximum keeps exp() from overflowing.
// The host samples names from these rows.
//
// L = lanes_per_row threads share each row (a power of two: 1 for short rows, more for long
// ones), lane l taking columns l, l + L, ...; a workgroup holds 64 / L rows, and a tree in
// workgroup memory combines the lanes' maxima and sums.
//
// Loop bound per invocation: 3 * ceil(C / L) + 2 * log2(L)

const THREADS: u32 = 64u;

struct Params { num_rows: u32, num_cols: u32, lanes_per_row: u32, _pad0: u32 }

@group(0) @binding(1) var<storage> weights: array<f32>;
@group(0) @binding(2) var<storage, read_write> probs: array<f32>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let lanes = params.lanes_per_row;
    let at = lane_of(id.local, lanes, group_index(id), params.num_rows, params.num_cols);
    if (at.past_end) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    let base = at.row * params.num_cols;
    let m = row_max(at, base);
    let sum = row_sum_exp(at, base, m);
    for (var c = at.lane; c < at.end; c += lanes) {
        probs[base + c] = exp(weights[base + c] - m) / sum;
    }
}
