// ceiling_tick: the smallest dispatch, for the cost of a dispatch and of a submission.
//
//   count[0] += add   (one thread; the count says how many dispatches ran)
//
// Loop bound per invocation: 0 (no loop)

const THREADS: u32 = 1u;

struct Params { add: f32, _pad0: u32, _pad1: u32, _pad2: u32 }

@group(0) @binding(1) var<storage, read_write> count: array<f32>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    count[0] += params.add;
}
