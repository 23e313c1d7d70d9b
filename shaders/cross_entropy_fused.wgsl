// cross_entropy_fused: the default step's forward and backward pass in one (row select,
// `--loss fused`), one thread per segment of examples.
//
// The host sorted the examples by context and cut each context's run into segments (see
// cross_entropy_backward): segment s covers examples segment_starts[s] .. segment_starts[s + 1],
// all of context r = segment_rows[s]. Its thread reads W[r] once into a private array, with
// its maximum m, then for each example i of the segment, in order:
//
//   e_c    = exp(W[r, c] - m)                each exp once per (example, column)
//   s_i    = sum_c e_c                       (4 running sums, columns c mod 4, then added)
//   nll_i  = m + log(s_i) - W[r, tgt_i]      = -log softmax(W[r])[tgt_i]
//   g_c   += e_c / s_i                       softmax(W[r])[c]
//
// and writes one sum per segment, added up BLOCK examples at a time, then the blocks' sums (a
// segment's examples often have equal terms, whose rounding one long f32 sum would pile up):
//
//   segment_grads[s, c] = g_c - #{i : tgt_i = c}      (as cross_entropy_backward)
//   nll_sums[s]         = sum_i nll_i                 (loss_total adds the segments)
//
// Each example's softmax is its own, as if its logits were its own row: the counts path
// (count_descent) is the form that does the work once per context. The one-hot part is
// counted as an integer and subtracted once, which avoids the cancellation of adding -1 and
// small probabilities term by term. W[r, tgt_i] is loaded at its example: a varying index
// into the private row would take the row out of registers.
//
// The row lives in VECS vec4s (at most 4 * VECS columns; the host takes
// cross_entropy_forward and cross_entropy_backward for wider rows), padded with LOWEST, whose
// exp is 0. Every loop over the columns runs VECS times, so that the compiler can unroll it
// and keep the arrays in registers (on lavapipe, loops to C are 16 times slower). The examples
// may be one span of a larger set: segments and example offsets count from the span's start,
// and the span's sums land from segment `first_segment` on.
//
// Loop bound per invocation: 10 * VECS + ceil(L / BLOCK) * (VECS + 1) + L * (2 * VECS + 1),
// L the host's segment length

const THREADS: u32 = 64u;
// vec4s per row (kernels.rs FUSED_VECS), and examples per block of the sums.
const VECS: u32 = 8u;
const BLOCK: u32 = 16u;

struct Params { num_segments: u32, num_cols: u32, first_segment: u32, _pad0: u32 }

@group(0) @binding(1) var<storage> weights: array<f32>;
@group(0) @binding(2) var<storage> targets: array<u32>;
@group(0) @binding(3) var<storage> segment_starts: array<u32>;
@group(0) @binding(4) var<storage> segment_rows: array<u32>;
@group(0) @binding(5) var<storage, read_write> segment_grads: array<f32>;
@group(0) @binding(6) var<storage, read_write> nll_sums: array<f32>;

// The most negative finite f32: the maximum of no values; a padding column's exp is 0.
const LOWEST: f32 = -3.40282347e38;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let segment = thread_index(id);
    if (segment >= params.num_segments) {
        return;
    }
    let cols = params.num_cols;
    let base = segment_rows[segment] * cols;
    var w: array<vec4<f32>, VECS>;
    var e: array<vec4<f32>, VECS>;
    var g: array<vec4<f32>, VECS>;
    var hits: array<vec4<u32>, VECS>;
    var m = LOWEST;
    for (var k = 0u; k < VECS; k++) {
        for (var j = 0u; j < 4u; j++) {
            let c = 4u * k + j;
            w[k][j] = select(LOWEST, weights[base + min(c, cols - 1u)], c < cols);
            m = max(m, w[k][j]);
        }
        g[k] = vec4(0.0);
        hits[k] = vec4(0u);
    }
    var nll = 0.0;
    let end = segment_starts[segment + 1u];
    for (var first = segment_starts[segment]; first < end; first += BLOCK) {
        var block_g: array<vec4<f32>, VECS>; // zeros
        var block_nll = 0.0;
        for (var i = first; i < min(first + BLOCK, end); i++) {
            var s4 = vec4(0.0);
            for (var k = 0u; k < VECS; k++) {
                e[k] = exp(w[k] - m);
                s4 += e[k];
            }
            let s = (s4.x + s4.y) + (s4.z + s4.w);
            let t = targets[i];
            for (var k = 0u; k < VECS; k++) {
                block_g[k] += e[k] / s;
                hits[k] += select(vec4(0u), vec4(1u), 4u * k + vec4(0u, 1u, 2u, 3u) == vec4(t));
            }
            block_nll += m + log(s) - weights[base + t];
        }
        for (var k = 0u; k < VECS; k++) {
            g[k] += block_g[k];
        }
        nll += block_nll;
    }
    let out = (params.first_segment + segment) * cols;
    for (var k = 0u; k < VECS; k++) {
        for (var j = 0u; j < 4u; j++) {
            let c = 4u * k + j;
            if (c < cols) {
                segment_grads[out + c] = g[k][j] - f32(hits[k][j]);
            }
        }
    }
    nll_sums[params.first_segment + segment] = nll;
}
