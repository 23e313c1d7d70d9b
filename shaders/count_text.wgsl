// count_text: the count model's scatter-add over a block of text, whose bytes are the pairs.
//
//   counts[context_j * V + symbols[byte_j]] += 1     for every byte j, but a '\n' after a '\n'
//
// The text is whole lines of clean bytes (corpus.rs `Batch::Text`), 4 to a u32, padded by the
// host with '\n' to whole vec4s and at least one '\n' (the end of a last line without one). A
// byte's symbol is `symbols[byte]` ('\n' is 0, the boundary); its context is the K symbols
// before it in its word, the latest as the lowest base-V digit, 0 at the word's start: the
// pairs of Examples::encode. A '\n' ends the word before it with (context, 0), and is no pair
// after a '\n' or at the text's start (blank lines). Each thread takes QUADS vec4s (16 bytes
// each) strided by THREADS, reads back the context before each (at most K bytes, up to a '\n'
// or the text's start), then carries it through the vec4's bytes. With PRIVATE (a table of
// at most MAX_BINS cells) the bytes count into a workgroup histogram first, then one global
// atomic a cell, as count_pairs_private; else straight into `counts`, as count_pairs. Integer
// atomics commute: the counts are exact. `counts` is cleared by the host before the first text.
//
// Loop bound per invocation: MAX_BINS / 256 (16) + QUADS * (K + 4 + 16) + ceil(num_bins / 256)

const THREADS: u32 = 256u;
const QUADS: u32 = 8u;
const BLOCK: u32 = QUADS * THREADS;
const NEWLINE: u32 = 10u;

struct Params {
    num_quads: u32, num_cols: u32, num_rows: u32, context_len: u32,
    num_bins: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

// Set by the host's pipeline: whether the table fits the workgroup histogram (a constant, so
// that no byte's atomic branches on it).
override PRIVATE: bool;

@group(0) @binding(1) var<storage> symbols: array<u32>;
@group(0) @binding(2) var<storage> text: array<u32>;
@group(0) @binding(3) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(4) var<storage> text4: array<vec4<u32>>;

// 16 KiB of workgroup memory: the WebGPU baseline's limit. Cleared by a loop, not by GL's
// zero-initialization (see count_pairs.wgsl).
const MAX_BINS: u32 = 4096u;
var<workgroup> private_counts: array<atomic<u32>, MAX_BINS>;

fn byte_at(j: u32) -> u32 {
    return (text[j / 4u] >> (8u * (j % 4u))) & 0xffu;
}

// The context of the byte at `start`: the symbols of up to K bytes before it, in its word.
fn context_before(start: u32) -> u32 {
    var context = 0u;
    var place = 1u;
    for (var m = 1u; m <= min(params.context_len, start); m++) {
        let b = byte_at(start - m);
        if (b == NEWLINE) {
            break;
        }
        context += symbols[b] * place;
        place *= params.num_cols;
    }
    return context;
}

fn add(cell: u32) {
    if (PRIVATE) {
        atomicAdd(&private_counts[cell], 1u);
    } else {
        atomicAdd(&counts[cell], 1u);
    }
}

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let group = group_index(id);
    if (group >= num_groups(params.num_quads, BLOCK)) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    if (PRIVATE) {
        for (var b = id.local; b < MAX_BINS; b += THREADS) {
            atomicStore(&private_counts[b], 0u);
        }
    }
    workgroupBarrier();
    let cols = params.num_cols;
    let rows = params.num_rows;
    let first = group * BLOCK + id.local;
    for (var q = first; q < min(params.num_quads, first + BLOCK); q += THREADS) {
        var context = context_before(16u * q);
        let quad = text4[q];
        for (var w = 0u; w < 4u; w++) {
            for (var shift = 0u; shift < 32u; shift += 8u) {
                let symbol = symbols[(quad[w] >> shift) & 0xffu];
                if (symbol != 0u || context != 0u) {
                    add(context * cols + symbol);
                }
                context = select((context * cols + symbol) % rows, 0u, symbol == 0u);
            }
        }
    }
    workgroupBarrier();
    if (PRIVATE) {
        for (var b = id.local; b < params.num_bins; b += THREADS) {
            let count = atomicLoad(&private_counts[b]);
            if (count > 0u) {
                atomicAdd(&counts[b], count);
            }
        }
    }
}
