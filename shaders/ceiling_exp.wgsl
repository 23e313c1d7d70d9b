// ceiling_exp: the exp rate with the operands in registers, no memory traffic in the loop.
//
//   x <- exp(-x), `steps` times, on four independent chains (x0 = values[local] + c / 4)
//   out[thread] = sum of the four chains
//
// x -> exp(-x) contracts (|derivative| < 1 near its fixed point 0.567), so rounding does not
// grow and the host's f64 iteration checks the result.
//
// Loop bound per invocation: steps (1,024)

const THREADS: u32 = 256u;

struct Params { steps: u32, _pad0: u32, _pad1: u32, _pad2: u32 }

@group(0) @binding(1) var<storage> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let x0 = values[id.local];
    var x = vec4<f32>(x0, x0 + 0.25, x0 + 0.5, x0 + 0.75);
    for (var i = 0u; i < params.steps; i++) {
        x = exp(-x);
    }
    out[thread_index(id)] = x.x + x.y + x.z + x.w;
}
