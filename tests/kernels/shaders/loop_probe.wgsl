// loop_probe: counts the loop iterations an invocation really makes.
//
// Each invocation runs two loops one after the other, `first` and then `second` iterations,
// and writes how many of each it made. A device that honours WGSL writes (first, second);
// Mesa's llvmpipe and lavapipe end every loop of an invocation silently once its loops have
// made 65,535 iterations in total (gallivm's LP_MAX_TGSI_LOOP_ITERATIONS).
//
// Loop bound per invocation: first + second.

struct Params {
    first: u32,
    second: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> made: array<u32>;

@compute @workgroup_size(1)
fn main() {
    var a = 0u;
    for (var i = 0u; i < params.first; i++) {
        a += 1u;
    }
    var b = 0u;
    for (var i = 0u; i < params.second; i++) {
        b += 1u;
    }
    made[0] = a;
    made[1] = b;
}
