// ceiling_sum_coarse: a coarsened reduction: each thread sums PER_THREAD values, then one
// 256-wide tree (8 barriers). PER_THREAD 64 (`ceiling_sum_coarse`), 1 (`ceiling_sum_tree`, the
// tree alone); without the tree (`ceiling_load`, TREE off), the cost of a load, each value
// read once.
//
//   sums[g] = sum of values[BLOCK g .. BLOCK (g + 1)),   BLOCK = 256 * PER_THREAD
//   TREE off: sums[t] = sum_j values[group * BLOCK + j * THREADS + local],   j < PER_THREAD
//
// (neighbouring threads read neighbouring values).
//
// Loop bound per invocation: PER_THREAD + log2(256) (at most 72)

const THREADS: u32 = 256u;

struct Params { n: u32, _pad0: u32, _pad1: u32, _pad2: u32 }

override TREE: bool;
override PER_THREAD: u32;

@group(0) @binding(1) var<storage> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> sums: array<f32>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let group = group_index(id);
    let block = THREADS * PER_THREAD;
    if (group >= num_groups(params.n, block)) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    var sum = 0.0;
    for (var j = 0u; j < PER_THREAD; j++) {
        let i = group * block + j * THREADS + id.local;
        if (i < params.n) {
            sum += values[i];
        }
    }
    if (!TREE) {
        sums[thread_index(id)] = sum;
        return;
    }
    let total = workgroup_sum(id.local, sum);
    if (id.local == 0u) {
        sums[group] = total;
    }
}
