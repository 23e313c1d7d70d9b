// ceiling_copy_vec4: the adapter's copy bandwidth with 16-byte loads and stores.
//
//   out[i] = values[i],   i < n vec4s; one thread per vec4
//
// Loop bound per invocation: 0 (no loop)

const THREADS: u32 = 256u;

struct Params { n: u32, _pad0: u32, _pad1: u32, _pad2: u32 }

@group(0) @binding(1) var<storage> values: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let i = thread_index(id);
    if (i < params.n) {
        out[i] = values[i];
    }
}
