//! Stage 1 streamed, for corpora larger than memory: a file read in blocks of whole lines, with
//! exactly [`crate::data`]'s words and pairs. Two passes: [`scan`], then [`PairEncoder`].

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use memchr::{memchr, memchr_iter, memrchr};

use crate::data::{DataError, UnknownChar, Vocab, WordStats, BOUNDARY};

/// Bytes of text per block: `MAKEMORE_CHUNK_BYTES` when a positive number, else 1 MiB.
pub fn block_bytes() -> usize {
    std::env::var("MAKEMORE_CHUNK_BYTES")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1 << 20)
}

/// Whole lines of valid UTF-8, the file's byte-order mark removed. As an iterator: its
/// trimmed lines (a '\r' with the spaces) with their numbers, blank ones dropped.
#[derive(Clone, Copy)]
pub struct Block<'a> {
    pub text: &'a str,
    /// The line number (from 1) of the block's first line.
    pub first_line: usize,
}

impl<'a> Iterator for Block<'a> {
    type Item = (usize, &'a str);

    /// For lines of a few bytes: an inlined byte loop finds a line's end faster than memchr,
    /// and ASCII spaces are trimmed bytewise (`trim` only at a non-ASCII end).
    fn next(&mut self) -> Option<(usize, &'a str)> {
        while !self.text.is_empty() {
            let (text, line) = (self.text, self.first_line);
            let end = text.bytes().position(|b| b == b'\n').unwrap_or(text.len());
            let bytes = &text.as_bytes()[..end];
            (self.text, self.first_line) = (text.get(end + 1..).unwrap_or(""), line + 1);
            // The ASCII characters that `char::is_whitespace` accepts.
            let space = |b: &u8| *b == b' ' || (b'\t'..=b'\r').contains(b);
            let Some(first) = bytes.iter().position(|b| !space(b)) else {
                continue;
            };
            let last = bytes.iter().rposition(|b| !space(b)).unwrap_or(first);
            let word = match bytes[first].is_ascii() && bytes[last].is_ascii() {
                true => &text[first..=last],
                false => text[first..=last].trim(),
            };
            if !word.is_empty() {
                return Some((line, word));
            }
        }
        None
    }
}

/// Reads a text in blocks of whole lines.
pub struct Blocks<R> {
    reader: R,
    name: String,
    block_bytes: usize,
    buf: Vec<u8>,
    /// Bytes of `buf` handed out as the last block; the file offset and line of `buf[0]`.
    handed_out: usize,
    offset: usize,
    line: usize,
}

impl<R: Read> Blocks<R> {
    pub fn new(reader: R, name: &str, block_bytes: usize) -> Blocks<R> {
        Blocks {
            reader,
            name: name.to_string(),
            block_bytes: block_bytes.max(1),
            buf: Vec::new(),
            handed_out: 0,
            offset: 0,
            line: 1,
        }
    }

    /// The next block, or `None` at the end; invalid UTF-8 is an error where it starts.
    pub fn next_block(&mut self) -> Result<Option<Block<'_>>, DataError> {
        let done = std::mem::take(&mut self.handed_out);
        self.line += newlines(&self.buf[..done]);
        self.offset += done;
        self.buf.drain(..done);
        let mut want = self.block_bytes;
        let end = loop {
            // A whole text (`read_words`) by the reader's read_to_end, which reserves its size.
            let more = want.saturating_sub(self.buf.len());
            let read = if more == usize::MAX {
                self.reader.read_to_end(&mut self.buf)
            } else {
                self.buf.reserve_exact(more);
                (&mut self.reader)
                    .take(more as u64)
                    .read_to_end(&mut self.buf)
            };
            let path = self.name.clone();
            let read = read.map_err(|source| DataError::Io { path, source })?;
            match memrchr(b'\n', &self.buf) {
                _ if read < more => break self.buf.len(),
                Some(last) => break last + 1,
                // A line longer than a block: read on until it ends.
                None => want = self.buf.len() + self.block_bytes,
            }
        };
        if end == 0 {
            return Ok(None);
        }
        let text = std::str::from_utf8(&self.buf[..end]).map_err(|err| {
            let valid = err.valid_up_to();
            let (path, line) = (self.name.clone(), self.line + newlines(&self.buf[..valid]));
            let offset = self.offset + valid;
            DataError::InvalidUtf8 { path, line, offset }
        })?;
        self.handed_out = end;
        let text = match self.offset {
            0 => text.strip_prefix('\u{feff}').unwrap_or(text),
            _ => text,
        };
        Ok(Some(Block {
            text,
            first_line: self.line,
        }))
    }
}

fn newlines(bytes: &[u8]) -> usize {
    memchr_iter(b'\n', bytes).count()
}

/// What the first pass learns about a file of words; `examples` counts its pairs.
#[derive(Clone, Debug)]
pub struct Scan {
    pub stats: WordStats,
    pub vocab: Vocab,
    pub examples: u64,
}

/// Opens a file of words, with `read_words`' errors.
pub(crate) fn open(path: &Path) -> Result<std::fs::File, DataError> {
    let name = path.display().to_string();
    if path.is_dir() {
        return Err(DataError::IsDirectory { path: name });
    }
    std::fs::File::open(path).map_err(|source| DataError::Io { path: name, source })
}

/// The first pass over a file, or `read_words`' error in its order of precedence (invalid
/// UTF-8 anywhere, then the first word with a '.', then a file without words).
pub fn scan(path: &Path, block_bytes: usize) -> Result<Scan, DataError> {
    scan_reader(open(path)?, &path.display().to_string(), block_bytes)
}

/// [`scan`] of any reader.
pub fn scan_reader<R: Read>(reader: R, name: &str, block_bytes: usize) -> Result<Scan, DataError> {
    let mut blocks = Blocks::new(reader, name, block_bytes);
    let (threads, mut found) = (threads(), ScanPart::EMPTY);
    while let Some(block) = blocks.next_block()? {
        let parts = at_once(split_block(block, threads), |part| {
            ScanPart::of_clean(part.text.as_bytes())
                .unwrap_or_else(|| ScanPart::of_words(part, name))
        });
        parts.into_iter().for_each(|part| found.merge(part));
    }
    found.finish(name)
}

/// The threads a block is shared between: the cores, at most 4 (each counts into a table).
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4))
}

/// `f` of every item, each on a thread of its own (the first on this one), in order.
fn at_once<I: Send, T: Send>(items: Vec<I>, f: impl Fn(I) -> T + Sync) -> Vec<T> {
    let mut items = items.into_iter();
    let first = items.next();
    std::thread::scope(|s| {
        let f = &f;
        let others: Vec<_> = items.map(|item| s.spawn(move || f(item))).collect();
        let joined = others
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        first.map(f).into_iter().chain(joined).collect()
    })
}

/// A block cut into at most `n` blocks of whole lines, in order; never an empty list.
fn split_block(block: Block<'_>, n: usize) -> Vec<Block<'_>> {
    let (text, mut parts) = (block.text, Vec::with_capacity(n));
    let (mut start, mut first_line) = (0, block.first_line);
    for i in 1..n {
        let from = (text.len() * i / n).max(start);
        let end = memchr(b'\n', &text.as_bytes()[from..]).map_or(text.len(), |at| from + at + 1);
        if end > start && end < text.len() {
            let text = &text[start..end];
            parts.push(Block { text, first_line });
            (first_line, start) = (first_line + newlines(text.as_bytes()), end);
        }
    }
    let text = &text[start..];
    parts.push(Block { text, first_line });
    parts
}

/// What the first pass has found in a stretch of the text; stretches merge in order.
struct ScanPart {
    /// The bytes of words, the characters past ASCII, and the first word with a '.'.
    byte_seen: [bool; 256],
    others: BTreeSet<char>,
    boundary_in_word: Option<DataError>,
    stats: WordStats,
    pairs: u64,
}

/// The bytes of a clean block: '\n' and printable ASCII other than ' ' and '.', so no line
/// needs trimming, no word has the boundary, and each byte is one character.
fn is_clean(b: u8) -> bool {
    b == b'\n' || (b'!'..=b'~').contains(&b) && b != b'.'
}

fn bytes_seen(bytes: &[u8]) -> [bool; 256] {
    let mut seen = [false; 256];
    bytes.iter().for_each(|&b| seen[b as usize] = true);
    seen
}

impl WordStats {
    fn add(&mut self, len: usize) {
        self.words += 1;
        (self.shortest, self.longest) = (self.shortest.min(len), self.longest.max(len));
    }

    fn merge(&mut self, part: &WordStats) {
        self.words += part.words;
        self.shortest = self.shortest.min(part.shortest);
        self.longest = self.longest.max(part.longest);
    }
}

impl ScanPart {
    /// Nothing yet: the first word's length is the shortest.
    const EMPTY: ScanPart = ScanPart {
        byte_seen: [false; 256],
        others: BTreeSet::new(),
        boundary_in_word: None,
        stats: WordStats {
            words: 0,
            shortest: usize::MAX,
            longest: 0,
        },
        pairs: 0,
    };

    /// What a clean block holds, in one loop over the bytes; `None` for any other block.
    fn of_clean(bytes: &[u8]) -> Option<ScanPart> {
        let mut byte_seen = bytes_seen(bytes);
        if (0..=255u8).any(|b| byte_seen[b as usize] && !is_clean(b)) {
            return None;
        }
        byte_seen[b'\n' as usize] = false;
        let (mut start, mut newlines, mut stats) = (0, 0, ScanPart::EMPTY.stats);
        let mut line_ends_at = |end: usize| {
            if end > start {
                stats.add(end - start);
            }
            (start, newlines) = (end + 1, newlines + 1);
        };
        // Eight bytes at a time (10% faster than memchr_iter on lines of 8 bytes): the high
        // bit of a byte of `ends` is set where a '\n' is (x = 0 exactly there; adding 0x7f to
        // its low 7 bits carries into the high bit unless they are 0, and x's own high bit
        // covers the bytes >= 0x80).
        let (mut groups, low) = (bytes.chunks_exact(8), 0x7f7f_7f7f_7f7f_7f7f);
        for (g, group) in groups.by_ref().enumerate() {
            let x = u64::from_le_bytes(group.try_into().expect("8 bytes")) ^ 0x0a0a_0a0a_0a0a_0a0a;
            let mut ends = !(((x & low) + low) | x) & !low;
            while ends != 0 {
                line_ends_at(g * 8 + ends.trailing_zeros() as usize / 8);
                ends &= ends - 1;
            }
        }
        let tail = bytes.len() - groups.remainder().len();
        memchr_iter(b'\n', groups.remainder()).for_each(|i| line_ends_at(tail + i));
        line_ends_at(bytes.len()); // The last line, without a '\n' (not counted as one).
        let pairs = (bytes.len() - (newlines - 1) + stats.words) as u64;
        Some(ScanPart {
            byte_seen,
            stats,
            pairs,
            ..ScanPart::EMPTY
        })
    }

    /// What a block holds, word by word (any text).
    fn of_words(block: Block<'_>, name: &str) -> ScanPart {
        let mut found = ScanPart::EMPTY;
        for (line, word) in block {
            // One loop over the bytes: those seen, a '.', and whether all are ASCII.
            let (mut dot, mut bits) = (false, 0u8);
            for &b in word.as_bytes() {
                found.byte_seen[b as usize] = true;
                (dot, bits) = (dot || b == b'.', bits | b);
            }
            if dot {
                // Reported once the whole file is known to be valid UTF-8.
                let error = || DataError::BoundaryInWord {
                    source_name: name.to_string(),
                    line,
                    word: word.to_string(),
                };
                found.boundary_in_word.get_or_insert_with(error);
                continue;
            }
            let mut len = word.len();
            if !bits.is_ascii() {
                found.others.extend(word.chars().filter(|c| !c.is_ascii()));
                len = word.chars().count();
            }
            found.stats.add(len);
            found.pairs += len as u64 + 1;
        }
        found
    }

    /// Adds what was found in the stretch of text after this one.
    fn merge(&mut self, later: ScanPart) {
        for (all, part) in self.byte_seen.iter_mut().zip(later.byte_seen) {
            *all |= part;
        }
        self.others.extend(later.others);
        self.boundary_in_word = self.boundary_in_word.take().or(later.boundary_in_word);
        self.stats.merge(&later.stats);
        self.pairs += later.pairs;
    }

    /// The whole text's scan, or `read_words`' error.
    fn finish(self, name: &str) -> Result<Scan, DataError> {
        if let Some(err) = self.boundary_in_word {
            return Err(err);
        }
        if self.stats.words == 0 {
            let source_name = name.to_string();
            return Err(DataError::Empty { source_name });
        }
        let ascii = (0..128u8).filter(|&b| self.byte_seen[b as usize]);
        let chars: String = ascii.map(char::from).chain(self.others).collect();
        Ok(Scan {
            stats: self.stats,
            vocab: Vocab::from_words(&[chars]),
            examples: self.pairs,
        })
    }
}

/// One batch of pairs: as in [`crate::data::Examples`], or a clean block's text, whose pairs
/// are its consecutive symbols (see [`PairBatches::byte_symbols`]).
pub enum Batch<'a> {
    Pairs {
        contexts: &'a [u32],
        targets: &'a [u32],
    },
    /// Whole lines of '\n' and printable ASCII other than ' ' and '.', each byte a symbol of
    /// the vocabulary: the pairs of a byte are (its context, its symbol), the context being
    /// the K symbols before it in its word (0 at a word's start); a '\n' ends the word before
    /// it, and is no pair after another '\n' or at the text's start. A text that does not end
    /// in '\n' ends as if it did.
    Text(&'a [u8]),
}

/// A source of (context, target) pairs that hands them out a batch at a time.
pub trait PairBatches {
    /// The next batch (possibly empty), or `None` when every pair has been handed out. Clean
    /// blocks of at most `text_bytes` bytes come as [`Batch::Text`], the others as pairs.
    fn next_batch(&mut self, text_bytes: usize) -> anyhow::Result<Option<Batch<'_>>>;
    /// Adds every pair left into `counts`, a V^K x V table: `counts[ctx * V + tgt] += 1`.
    fn count_into(&mut self, counts: &mut [u32]) -> anyhow::Result<()>;
    /// V: the columns of the count table.
    fn num_cols(&self) -> usize;
    /// The symbol of each byte of a text batch ('\n' is 0), and K, the context's symbols.
    fn byte_symbols(&self) -> ([u32; 256], usize);
    /// Once every batch is counted: an error if the first pass found other than `counted` pairs.
    fn check_total(&self, counted: u64) -> anyhow::Result<()>;
}

/// Marks a byte that is no symbol.
const NOT_IN_VOCAB: u32 = u32::MAX;

/// Words to (context, target) pairs, as [`crate::data::Examples::encode`] describes them.
pub(crate) struct Encoding {
    vocab: Vocab,
    /// The symbol of each ASCII byte: 0 for '\n', [`NOT_IN_VOCAB`] for '.' and those it lacks.
    symbol: [u32; 256],
    context_len: usize,
    pub num_cols: usize,
    pub num_rows: usize,
}

impl Encoding {
    /// The caller has checked that V^K fits (limits::check_context, or a checkpoint's tensors).
    pub fn new(vocab: &Vocab, context_len: usize) -> Encoding {
        let symbol = std::array::from_fn(|b| match char::from(b as u8) {
            '\n' => 0,
            c if c.is_ascii() && c != BOUNDARY => vocab.index(c).unwrap_or(NOT_IN_VOCAB),
            _ => NOT_IN_VOCAB,
        });
        let num_rows = crate::limits::table_rows(vocab.len(), context_len)
            .expect("the V^K x V table's size is checked before encoding");
        Encoding {
            vocab: vocab.clone(),
            symbol,
            context_len,
            num_cols: vocab.len(),
            num_rows,
        }
    }

    /// Whether a block is clean: [`is_clean`] bytes, each in the vocabulary.
    fn is_clean_block(&self, bytes: &[u8]) -> bool {
        let seen = bytes_seen(bytes);
        (0..=255u8)
            .all(|b| !seen[b as usize] || is_clean(b) && self.symbol[b as usize] != NOT_IN_VOCAB)
    }

    /// The context after `target`; inside a word never 0 (its last digit is a character's).
    fn next_context(&self, context: usize, target: u32) -> usize {
        match self.context_len {
            1 => target as usize, // No division on the common path.
            _ => (context * self.num_cols + target as usize) % self.num_rows,
        }
    }

    /// Hands every pair of a block's words to `pair(context, target)`.
    fn encode(&self, block: Block<'_>, pair: &mut impl FnMut(u32, u32)) -> Result<(), UnknownChar> {
        let bytes = block.text.as_bytes();
        if !self.is_clean_block(bytes) {
            return self.encode_words(block.map(|(_, word)| word), pair);
        }
        // One loop over the bytes: '\n' ends the word before it, if any.
        let mut context = 0usize;
        for &b in bytes {
            let target = self.symbol[b as usize];
            if target != 0 || context != 0 {
                pair(context as u32, target);
                context = match target {
                    0 => 0,
                    _ => self.next_context(context, target),
                };
            }
        }
        if context != 0 {
            pair(context as u32, 0);
        }
        Ok(())
    }

    /// [`Encoding::encode`] word by word (any words).
    pub fn encode_words<'w>(
        &self,
        words: impl IntoIterator<Item = &'w str>,
        pair: &mut impl FnMut(u32, u32),
    ) -> Result<(), UnknownChar> {
        for word in words {
            let mut context = 0usize;
            let mut push = |target: u32| {
                pair(context as u32, target);
                context = self.next_context(context, target);
            };
            // ASCII bytes by table (0 is '\n', in no word), from the first other byte on
            // characters by the vocabulary ('.' it has, but no word may).
            let (bytes, mut ascii) = (word.as_bytes(), 0);
            while let Some(&b) = bytes.get(ascii) {
                match self.symbol[b as usize] {
                    0 | NOT_IN_VOCAB => break,
                    target => push(target),
                }
                ascii += 1;
            }
            for ch in word[ascii..].chars() {
                let target = self.vocab.index(ch).filter(|_| ch != BOUNDARY);
                let word = || word.to_string();
                push(target.ok_or_else(|| UnknownChar { word: word(), ch })?);
            }
            push(0);
        }
        Ok(())
    }

    /// Adds the pairs of a block into `counts` and returns their number.
    fn count(&self, block: Block<'_>, counts: &mut [u32]) -> Result<u64, UnknownChar> {
        let (bytes, v) = (block.text.as_bytes(), self.num_cols);
        if self.context_len == 1 && self.is_clean_block(bytes) {
            return Ok(self.count_clean_bigrams(bytes, counts));
        }
        let mut pairs = 0u64;
        self.encode(block, &mut |context, target| {
            counts[context as usize * v + target as usize] += 1;
            pairs += 1;
        })?;
        Ok(pairs)
    }

    /// The counts of a clean block with K = 1: pairs of bytes (all below 128, a '\n' before
    /// the text) counted first, then added per pair of symbols, but for ('\n', '\n'): no pair.
    fn count_clean_bigrams(&self, bytes: &[u8], counts: &mut [u32]) -> u64 {
        let mut by_bytes = vec![0u32; 128 * 128];
        let mut prev = b'\n';
        for &b in bytes {
            by_bytes[((prev as usize) << 7 | b as usize) & (128 * 128 - 1)] += 1;
            prev = b;
        }
        let (symbol, v) = (|b: usize| self.symbol[b] as usize, self.num_cols);
        let mut pairs = 0u64;
        for (ab, &n) in by_bytes.iter().enumerate() {
            let (a, b) = (ab >> 7, ab & 127);
            if n > 0 && (a, b) != (10, 10) {
                counts[symbol(a) * v + symbol(b)] += n;
                pairs += n as u64;
            }
        }
        // The text's last word, without a '\n'.
        if prev != b'\n' {
            counts[symbol(prev as usize) * v] += 1;
            pairs += 1;
        }
        pairs
    }
}

/// The second pass: the pairs of `Examples::encode`, one batch per block.
pub struct PairEncoder<R> {
    blocks: Blocks<R>,
    encoding: Encoding,
    /// Pairs the first pass counted, to notice a file that changed in between.
    expected: u64,
    contexts: Vec<u32>,
    targets: Vec<u32>,
}

impl PairEncoder<std::fs::File> {
    /// The pairs of a file whose first pass gave `scan`, with contexts of `k` characters.
    pub fn open(path: &Path, scan: &Scan, k: usize, block_bytes: usize) -> Result<Self, DataError> {
        let name = path.display().to_string();
        Ok(PairEncoder::new(open(path)?, &name, scan, k, block_bytes))
    }
}

impl<R: Read> PairEncoder<R> {
    pub fn new(reader: R, name: &str, scan: &Scan, k: usize, block_bytes: usize) -> Self {
        PairEncoder {
            blocks: Blocks::new(reader, name, block_bytes),
            encoding: Encoding::new(&scan.vocab, k),
            expected: scan.examples,
            contexts: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// The rows of the V^K x V table the contexts index.
    pub fn num_rows(&self) -> usize {
        self.encoding.num_rows
    }
}

impl<R: Read> PairBatches for PairEncoder<R> {
    fn next_batch(&mut self, text_bytes: usize) -> anyhow::Result<Option<Batch<'_>>> {
        let (contexts, targets) = (&mut self.contexts, &mut self.targets);
        contexts.clear();
        targets.clear();
        let Some(block) = self.blocks.next_block()? else {
            return Ok(None);
        };
        let bytes = block.text.as_bytes();
        if bytes.len() <= text_bytes && self.encoding.is_clean_block(bytes) {
            return Ok(Some(Batch::Text(bytes)));
        }
        self.encoding.encode(block, &mut |context, target| {
            contexts.push(context);
            targets.push(target);
        })?;
        Ok(Some(Batch::Pairs {
            contexts: &self.contexts,
            targets: &self.targets,
        }))
    }

    fn num_cols(&self) -> usize {
        self.encoding.num_cols
    }

    fn byte_symbols(&self) -> ([u32; 256], usize) {
        (self.encoding.symbol, self.encoding.context_len)
    }

    fn check_total(&self, counted: u64) -> anyhow::Result<()> {
        let (path, first) = (&self.blocks.name, self.expected);
        anyhow::ensure!(
            first == counted,
            "{path} changed while it was read: {first} pairs in the first pass, {counted} in the second"
        );
        Ok(())
    }

    /// Each block cut into [`threads`] parts counted at once, each into its own table (the first
    /// into `counts`), summed at the end (exact in u32); one table if a copy takes over 64 MiB.
    fn count_into(&mut self, counts: &mut [u32]) -> anyhow::Result<()> {
        let one = std::mem::size_of_val(counts) > 64 << 20;
        let threads = if one { 1 } else { threads() };
        let mut tables = vec![vec![0u32; counts.len()]; threads - 1];
        let (encoding, mut counted) = (&self.encoding, 0);
        while let Some(block) = self.blocks.next_block()? {
            let each =
                std::iter::once(&mut *counts).chain(tables.iter_mut().map(Vec::as_mut_slice));
            let parts: Vec<_> = split_block(block, threads).into_iter().zip(each).collect();
            for pairs in at_once(parts, |(part, table)| encoding.count(part, table)) {
                counted += pairs?;
            }
        }
        self.check_total(counted)?;
        for table in &tables {
            for (all, part) in counts.iter_mut().zip(table) {
                *all += part;
            }
        }
        Ok(())
    }
}

/// The V^K x V count table of a corpus, and the number of pairs it counts (their sum).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountTable {
    pub counts: Vec<u32>,
    pub num_cols: usize,
    pub examples: usize,
}

impl CountTable {
    pub fn new(counts: Vec<u32>, num_cols: usize) -> CountTable {
        CountTable {
            examples: counts.iter().map(|&n| n as u64).sum::<u64>() as usize,
            counts,
            num_cols,
        }
    }
}

/// The most pairs a u32 count table holds: no cell can wrap when the total is within it.
pub fn check_countable(pairs: u64, source: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        pairs <= u32::MAX as u64,
        "{source} has {pairs} (context, next) pairs, more than the {} that the u32 count table can count; split the file",
        u32::MAX
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{split_block, Block};

    #[test]
    fn split_blocks_are_whole_lines_that_add_up_to_the_block() {
        let text = "ann\n\nbob\r\ncé\nzoë\nx\nlast";
        let starts =
            (0..text.len()).filter(|&s| s == 0 || text.get(..s).is_some_and(|t| t.ends_with('\n')));
        for (n, start) in (1..=5).flat_map(|n| starts.clone().map(move |s| (n, s))) {
            let (text, first_line) = (&text[start..], 3);
            let parts = split_block(Block { text, first_line }, n);
            assert!(!parts.is_empty() && parts.len() <= n);
            assert_eq!(parts.iter().map(|p| p.text).collect::<String>(), text);
            let mut line = 3;
            for (i, part) in parts.iter().enumerate() {
                assert_eq!(part.first_line, line, "n {n} from {start}");
                let last = i + 1 == parts.len();
                assert!(last || part.text.ends_with('\n') && !part.text.is_empty());
                line += part.text.matches('\n').count();
            }
        }
        // A long block is shared out.
        let (text, first_line) = (&"ab\n".repeat(1000), 1);
        assert_eq!(split_block(Block { text, first_line }, 4).len(), 4);
    }
}
