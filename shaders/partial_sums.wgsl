// partial_sums: one level of a fixed-order sum of many values.
//
//   sums[g] = sum_{i in block g} f(values[i]),   block g = values[4096 g .. 4096 (g + 1))
//   f(x) = x * x when `square` is set (the L2 penalty's sum of W^2), else x
//
// Thread t of workgroup g adds the values 4096 g + t + 256 j, j = 0..15, in order; a tree
// over the 256 threads adds those. The host applies levels until at most 4,096 values are
// left for loss_total, so every sum is the same on every run, and no invocation loops over
// more than its block, however many values there are.
//
// Loop bound per invocation: 16 + log2(256) = 24

const THREADS: u32 = 256u;
const PER_THREAD: u32 = 16u;
const BLOCK: u32 = THREADS * PER_THREAD;

struct Params { num_values: u32, square: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(1) var<storage> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> sums: array<f32>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let group = group_index(id);
    if (group >= num_groups(params.num_values, BLOCK)) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    var sum = 0.0;
    for (var j = 0u; j < PER_THREAD; j++) {
        let i = group * BLOCK + j * THREADS + id.local;
        if (i < params.num_values) {
            let x = values[i];
            sum += select(x, x * x, params.square != 0u);
        }
    }
    let total = workgroup_sum(id.local, sum);
    if (id.local == 0u) {
        sums[group] = total;
    }
}
