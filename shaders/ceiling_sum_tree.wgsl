// ceiling_sum_tree: a reduction with one value per thread and a 256-wide tree (8 barriers).
//
//   sums[g] = sum of values[256 g .. 256 (g + 1))
//
// Loop bound per invocation: log2(256) = 8

const THREADS: u32 = 256u;

struct Params { n: u32, _pad0: u32, _pad1: u32, _pad2: u32 }

@group(0) @binding(1) var<storage> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> sums: array<f32>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let group = group_index(id);
    if (group >= num_groups(params.n, THREADS)) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    let i = thread_index(id);
    let total = workgroup_sum(id.local, select(0.0, values[min(i, params.n - 1u)], i < params.n));
    if (id.local == 0u) {
        sums[group] = total;
    }
}
