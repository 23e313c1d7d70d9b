// partial_sums: one level of a fixed-order sum of many values.
//
//   sums[g] = sum_{i in block g} f(values[i]),   block g = values[BLOCK g .. BLOCK (g + 1))
//   f(x) = x * x when `square` is set (the L2 penalty's sum of W^2), else x
//
// Each block of 8,192 values is added in a fixed order (sum.wgsl). The host applies levels
// until at most 8,192 values are left for loss_total, so every sum is the same on every run,
// and no invocation loops over more than its block, however many values there are.
//
// Loop bound per invocation: sum.wgsl's, 32 + log2(256)

const THREADS: u32 = 256u;

struct Params { num_values: u32, square: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(1) var<storage> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> sums: array<f32>;

fn term(i: u32) -> f32 {
    let x = values[i];
    return select(x, x * x, params.square != 0u);
}

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let group = group_index(id);
    if (group >= num_groups(params.num_values, BLOCK)) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    let total = group_sum(id, params.num_values);
    if (id.local == 0u) {
        sums[group] = total;
    }
}
