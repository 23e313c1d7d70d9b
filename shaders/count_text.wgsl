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
// or the text's start), then carries it through the vec4's bytes. The pairs are added through
// common/histogram.wgsl, as count_pairs's: into a workgroup histogram with PRIVATE
// (`count_text`), else straight into `counts` (`count_text_global`).
//
// Loop bound per invocation: QUADS * (K + 4 + 16), plus the histogram's with PRIVATE

const THREADS: u32 = 256u;
const QUADS: u32 = 8u;
const BLOCK: u32 = QUADS * THREADS;
const NEWLINE: u32 = 10u;

struct Params {
    num_quads: u32, num_cols: u32, num_rows: u32, context_len: u32,
    num_bins: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

override PRIVATE: bool;

@group(0) @binding(1) var<storage> symbols: array<u32>;
@group(0) @binding(2) var<storage> text: array<u32>;
@group(0) @binding(3) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(4) var<storage> text4: array<vec4<u32>>;

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

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let group = group_index(id);
    if (group >= num_groups(params.num_quads, BLOCK)) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    clear_histogram(id.local);
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
    flush_histogram(id.local, params.num_bins);
}
