//! Stage 1 streamed: a file of words read in blocks of bounded size, for corpora larger than
//! memory. The words, the vocabulary and the (context, target) pairs are exactly those of
//! [`crate::data`] (`read_words`, `Vocab::from_words`, `Examples::encode`); only the whole
//! text, the word list and the example arrays are never held.
//!
//! Two passes over the file:
//!
//! ```text
//! scan    every block: UTF-8 checked, words trimmed, '.' refused -> vocabulary, word stats
//! pairs   every block: words encoded as (context, target) pairs, one batch per block
//! ```
//!
//! A block is whole lines: about [`chunk_bytes`] of text, cut after its last '\n' (a byte that
//! is never part of a multi-byte character), so a character or a CRLF is never split and an
//! error's line and byte offset count from the start of the file. Memory is one block (the
//! chunk size, or the longest line if that is longer) and its pairs, whatever the file's size.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use crate::data::{DataError, UnknownChar, Vocab, WordStats, BOUNDARY};

/// Bytes of text per block unless `MAKEMORE_CHUNK_BYTES` says otherwise.
pub const DEFAULT_CHUNK_BYTES: usize = 1 << 20;

/// Bytes of text per block: `MAKEMORE_CHUNK_BYTES` when it is a positive number (tests make
/// it tiny so that small files cross many block boundaries), else [`DEFAULT_CHUNK_BYTES`].
pub fn chunk_bytes() -> usize {
    std::env::var("MAKEMORE_CHUNK_BYTES")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_CHUNK_BYTES)
}

/// Whole lines of text, valid UTF-8, the byte-order mark of the file's start removed.
pub struct Block<'a> {
    pub text: &'a str,
    /// The line number (from 1) of the block's first line.
    pub first_line: usize,
}

/// Reads a text in blocks of whole lines.
pub struct Blocks<R> {
    reader: R,
    name: String,
    chunk_bytes: usize,
    buf: Vec<u8>,
    /// Bytes at the front of `buf` that belong to the block last handed out.
    handed_out: usize,
    /// Byte offset in the file, and line number, of `buf[0]`.
    offset: u64,
    line: usize,
    eof: bool,
}

impl<R: Read> Blocks<R> {
    /// Blocks of about `chunk_bytes` from `reader`; `name` is the file's, for errors.
    pub fn new(reader: R, name: &str, chunk_bytes: usize) -> Blocks<R> {
        Blocks {
            reader,
            name: name.to_string(),
            chunk_bytes: chunk_bytes.max(1),
            buf: Vec::new(),
            handed_out: 0,
            offset: 0,
            line: 1,
            eof: false,
        }
    }

    /// Reads until `buf` holds `want` bytes or the text ends.
    fn fill(&mut self, want: usize) -> Result<(), DataError> {
        while !self.eof && self.buf.len() < want {
            let len = self.buf.len();
            self.buf.resize(want, 0);
            match self.reader.read(&mut self.buf[len..]) {
                Ok(0) => {
                    self.buf.truncate(len);
                    self.eof = true;
                }
                Ok(n) => self.buf.truncate(len + n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.buf.truncate(len),
                Err(source) => {
                    return Err(DataError::Io {
                        path: self.name.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// The next block, or `None` at the end of the text. Invalid UTF-8 is an error with the
    /// line and byte offset of its first bad byte, as `read_words` reports it.
    pub fn next_block(&mut self) -> Result<Option<Block<'_>>, DataError> {
        // Forget the previous block.
        let done = self.handed_out;
        self.line += newlines(&self.buf[..done]);
        self.offset += done as u64;
        self.buf.drain(..done);
        self.handed_out = 0;

        let mut want = self.chunk_bytes;
        let end = loop {
            self.fill(want)?;
            if self.eof {
                break self.buf.len();
            }
            if let Some(last) = self.buf.iter().rposition(|&b| b == b'\n') {
                break last + 1;
            }
            // A line longer than a block: read on until it ends.
            want = self.buf.len() + self.chunk_bytes;
        };
        if end == 0 {
            return Ok(None);
        }
        let text = std::str::from_utf8(&self.buf[..end]).map_err(|err| {
            let valid = err.valid_up_to();
            DataError::InvalidUtf8 {
                path: self.name.clone(),
                line: self.line + newlines(&self.buf[..valid]),
                offset: (self.offset + valid as u64) as usize,
            }
        })?;
        self.handed_out = end;
        let text = if self.offset == 0 {
            text.strip_prefix('\u{feff}').unwrap_or(text)
        } else {
            text
        };
        Ok(Some(Block {
            text,
            first_line: self.line,
        }))
    }
}

fn newlines(bytes: &[u8]) -> usize {
    // Counted in u8 lanes, 255 bytes at a time (so no lane can wrap).
    bytes
        .chunks(255)
        .map(|c| c.iter().fold(0u8, |n, &b| n + (b == b'\n') as u8) as usize)
        .sum()
}

/// The words of a block with their line numbers: each line trimmed, blank lines dropped
/// (`parse_words`' rule: lines end at '\n', and a '\r' before it is trimmed with the spaces).
/// Written for lines of a few bytes: a plain byte loop finds each line's end, and ASCII
/// whitespace is trimmed bytewise before `str::trim` sees any other character.
struct Words<'a> {
    text: &'a str,
    /// Byte offset and line number of the next line.
    pos: usize,
    line: usize,
}

fn words<'a>(block: &Block<'a>) -> Words<'a> {
    Words {
        text: block.text,
        pos: 0,
        line: block.first_line,
    }
}

/// The ASCII characters that `char::is_whitespace` accepts: '\t', '\n', VT, FF, '\r', ' '.
fn is_ascii_space(b: u8) -> bool {
    b == b' ' || (b'\t'..=b'\r').contains(&b)
}

impl<'a> Iterator for Words<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<(usize, &'a str)> {
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() {
            let rest = &bytes[self.pos..];
            let len = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let line = &rest[..len];
            let (start, line_number) = (self.pos, self.line);
            self.pos += len + 1;
            self.line += 1;
            let Some(first) = line.iter().position(|&b| !is_ascii_space(b)) else {
                continue;
            };
            let last = line
                .iter()
                .rposition(|&b| !is_ascii_space(b))
                .unwrap_or(first);
            // Whole characters: the cuts are next to ASCII bytes.
            let word = &self.text[start + first..start + last + 1];
            let word = if line[first].is_ascii() && line[last].is_ascii() {
                word
            } else {
                word.trim()
            };
            if !word.is_empty() {
                return Some((line_number, word));
            }
        }
        None
    }
}

/// What the first pass learns about a file of words.
#[derive(Clone, Debug)]
pub struct Scan {
    pub stats: WordStats,
    pub vocab: Vocab,
    /// The number of (context, target) pairs: one per character plus one per word.
    pub examples: u64,
}

/// Opens a file of words, with `read_words`' errors.
fn open(path: &Path) -> Result<std::fs::File, DataError> {
    let name = path.display().to_string();
    if path.is_dir() {
        return Err(DataError::IsDirectory { path: name });
    }
    std::fs::File::open(path).map_err(|source| DataError::Io { path: name, source })
}

/// The first pass over a file: its vocabulary and word statistics, and the errors
/// `read_words` gives, in the same order of precedence (invalid UTF-8 anywhere first, then
/// the first word with a '.', then a file without words).
pub fn scan(path: &Path, chunk_bytes: usize) -> Result<Scan, DataError> {
    let name = path.display().to_string();
    scan_reader(open(path)?, &name, chunk_bytes)
}

/// [`scan`] of any reader; `name` names it in errors. Each block is cut into [`threads`]
/// parts of whole lines, scanned at once, and their findings merged in the text's order.
pub fn scan_reader<R: Read>(reader: R, name: &str, chunk_bytes: usize) -> Result<Scan, DataError> {
    let mut blocks = Blocks::new(reader, name, chunk_bytes);
    let threads = threads();
    let mut found = ScanPart::default();
    while let Some(block) = blocks.next_block()? {
        let parts = split_block(&block, threads);
        let scan_part = |part: &Block<'_>| {
            let mut found = ScanPart::default();
            found.add_block(part, name);
            found
        };
        let later: Vec<ScanPart> = std::thread::scope(|s| {
            let handles: Vec<_> = parts[1..]
                .iter()
                .map(|part| s.spawn(move || scan_part(part)))
                .collect();
            found.merge(scan_part(&parts[0]));
            handles.into_iter().map(join).collect()
        });
        for part in later {
            found.merge(part);
        }
    }
    found.finish(name)
}

/// The threads a block is shared between: the cores, at most 4 (each holds its own count
/// table in the second pass).
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4))
}

/// The result of a scoped thread; a panic in it goes on in the caller.
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// A block cut into at most `n` blocks of whole lines (each cut is after a '\n' at or past
/// an n-th of the text), in order, with their first lines; never an empty list.
fn split_block<'a>(block: &Block<'a>, n: usize) -> Vec<Block<'a>> {
    let (text, bytes) = (block.text, block.text.as_bytes());
    let mut parts = Vec::with_capacity(n);
    let (mut start, mut line) = (0, block.first_line);
    for i in 1..n {
        let from = (bytes.len() * i / n).max(start);
        let end = match bytes[from..].iter().position(|&b| b == b'\n') {
            Some(at) => from + at + 1,
            None => bytes.len(),
        };
        if end > start && end < bytes.len() {
            parts.push(Block {
                text: &text[start..end],
                first_line: line,
            });
            line += newlines(&bytes[start..end]);
            start = end;
        }
    }
    parts.push(Block {
        text: &text[start..],
        first_line: line,
    });
    parts
}

/// What the first pass has found in a stretch of the text; stretches merge in order.
struct ScanPart {
    /// Bytes seen in words: the ASCII ones are characters of the vocabulary.
    byte_seen: [bool; 256],
    /// The non-ASCII characters seen in words.
    others: BTreeSet<char>,
    /// The first word with a '.'.
    boundary_in_word: Option<DataError>,
    words: usize,
    shortest: usize,
    longest: usize,
    examples: u64,
}

impl Default for ScanPart {
    fn default() -> ScanPart {
        ScanPart {
            byte_seen: [false; 256],
            others: BTreeSet::new(),
            boundary_in_word: None,
            words: 0,
            shortest: usize::MAX,
            longest: 0,
            examples: 0,
        }
    }
}

/// Whether a byte may be in a clean block: '\n', or a printable ASCII character other than
/// ' ' and '.' (so no line needs trimming and no word has the boundary).
fn is_clean(b: u8) -> bool {
    b == b'\n' || (b'!'..=b'~').contains(&b) && b != b'.'
}

/// The bytes that occur in `bytes`.
fn bytes_seen(bytes: &[u8]) -> [bool; 256] {
    let mut seen = [false; 256];
    for &b in bytes {
        seen[b as usize] = true;
    }
    seen
}

impl ScanPart {
    /// Adds a block's words: [`ScanPart::add_clean`] where it applies, else the words one by one.
    fn add_block(&mut self, block: &Block<'_>, name: &str) {
        if !self.add_clean(block.text.as_bytes()) {
            self.add_words(block, name);
        }
    }

    /// Adds the words of a clean block (only [`is_clean`] bytes, so every non-empty line is
    /// a word of ASCII characters as it stands) in one loop over the bytes; false, with
    /// nothing added, for any other block.
    fn add_clean(&mut self, bytes: &[u8]) -> bool {
        let mut seen = bytes_seen(bytes);
        if (0..=255u8).any(|b| seen[b as usize] && !is_clean(b)) {
            return false;
        }
        let (mut words, mut newlines) = (0usize, 0usize);
        let (mut shortest, mut longest, mut start) = (usize::MAX, 0usize, 0usize);
        let mut line_ends_at = |at: usize| {
            newlines += 1;
            // The line that ends here is a word when it is not empty.
            let len = at - start;
            start = at + 1;
            if len > 0 {
                words += 1;
                shortest = shortest.min(len);
                longest = longest.max(len);
            }
        };
        // Eight bytes at a time: the high bit of each byte of `ends` is set where a '\n' is
        // (x = 0 exactly where the byte is '\n'; adding 0x7f to its low 7 bits carries into
        // the high bit unless they are 0, and x's own high bit covers the bytes >= 0x80).
        let mut groups = bytes.chunks_exact(8);
        for (g, group) in groups.by_ref().enumerate() {
            let x = u64::from_le_bytes(group.try_into().expect("8 bytes")) ^ 0x0a0a_0a0a_0a0a_0a0a;
            let low = 0x7f7f_7f7f_7f7f_7f7f;
            let mut ends = !(((x & low) + low) | x) & 0x8080_8080_8080_8080;
            while ends != 0 {
                line_ends_at(g * 8 + ends.trailing_zeros() as usize / 8);
                ends &= ends - 1;
            }
        }
        let tail = bytes.len() - groups.remainder().len();
        for (i, &b) in groups.remainder().iter().enumerate() {
            if b == b'\n' {
                line_ends_at(tail + i);
            }
        }
        // The text's last line, without a '\n' (not counted as one).
        line_ends_at(bytes.len());
        newlines -= 1;
        seen[b'\n' as usize] = false;
        for (all, part) in self.byte_seen.iter_mut().zip(seen) {
            *all |= part;
        }
        self.words += words;
        self.shortest = self.shortest.min(shortest);
        self.longest = self.longest.max(longest);
        // One pair per character and one per word.
        self.examples += (bytes.len() - newlines + words) as u64;
        true
    }

    /// Adds a block's words one by one (any text).
    fn add_words(&mut self, block: &Block<'_>, name: &str) {
        for (line, word) in words(block) {
            // One loop over the bytes: the characters seen, a '.', and whether all are ASCII.
            let (mut dot, mut all_bits) = (false, 0u8);
            for &b in word.as_bytes() {
                self.byte_seen[b as usize] = true;
                dot |= b == b'.';
                all_bits |= b;
            }
            if dot {
                // Reported once the whole file is known to be valid UTF-8.
                self.boundary_in_word
                    .get_or_insert_with(|| DataError::BoundaryInWord {
                        source_name: name.to_string(),
                        line,
                        word: word.to_string(),
                    });
                continue;
            }
            let len = if all_bits.is_ascii() {
                word.len()
            } else {
                let mut len = 0;
                for c in word.chars().filter(|c| !c.is_ascii()) {
                    self.others.insert(c);
                    len += 1;
                }
                len + word.bytes().filter(u8::is_ascii).count()
            };
            self.words += 1;
            self.shortest = self.shortest.min(len);
            self.longest = self.longest.max(len);
            self.examples += len as u64 + 1;
        }
    }

    /// Adds what was found in the stretch of text after this one.
    fn merge(&mut self, later: ScanPart) {
        for (all, part) in self.byte_seen.iter_mut().zip(later.byte_seen) {
            *all |= part;
        }
        self.others.extend(later.others);
        if self.boundary_in_word.is_none() {
            self.boundary_in_word = later.boundary_in_word;
        }
        self.words += later.words;
        self.shortest = self.shortest.min(later.shortest);
        self.longest = self.longest.max(later.longest);
        self.examples += later.examples;
    }

    /// The whole text's scan, or `read_words`' error.
    fn finish(self, name: &str) -> Result<Scan, DataError> {
        if let Some(err) = self.boundary_in_word {
            return Err(err);
        }
        if self.words == 0 {
            return Err(DataError::Empty {
                source_name: name.to_string(),
            });
        }
        let ascii = (0..128u8)
            .filter(|&b| self.byte_seen[b as usize])
            .map(char::from);
        let chars: Vec<char> = ascii.chain(self.others).collect();
        Ok(Scan {
            stats: WordStats {
                words: self.words,
                shortest: self.shortest,
                longest: self.longest,
            },
            vocab: Vocab::from_words(&[chars.into_iter().collect::<String>()]),
            examples: self.examples,
        })
    }
}

/// Pairs of one batch: `contexts[i]` is followed by `targets[i]`.
pub struct PairBatch<'a> {
    pub contexts: &'a [u32],
    pub targets: &'a [u32],
}

/// A source of (context, target) pairs that hands them out a batch at a time.
pub trait PairBatches {
    /// The next batch (possibly empty), or `None` when every pair has been handed out.
    fn next_batch(&mut self) -> anyhow::Result<Option<PairBatch<'_>>>;

    /// Adds every pair left into `counts`, a V^K x V table: `counts[ctx * V + tgt] += 1`
    /// (the CPU's `count_pairs` batch by batch, or without batches where the source can).
    fn count_into(&mut self, counts: &mut [u32]) -> anyhow::Result<()> {
        let num_cols = self.num_cols();
        while let Some(batch) = self.next_batch()? {
            for (&ctx, &tgt) in batch.contexts.iter().zip(batch.targets) {
                counts[ctx as usize * num_cols + tgt as usize] += 1;
            }
        }
        Ok(())
    }

    /// V: the columns of the count table.
    fn num_cols(&self) -> usize;
}

/// Why the second pass over a file failed.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    UnknownChar(#[from] UnknownChar),
    #[error(
        "{path} changed while it was read: {first} pairs in the first pass, {second} in the second"
    )]
    Changed {
        path: String,
        first: u64,
        second: u64,
    },
}

/// The largest count table that each counting thread copies (larger ones are counted by one).
const MAX_THREAD_TABLE_BYTES: usize = 64 << 20;

/// Marks an ASCII byte that the vocabulary does not have.
const NOT_IN_VOCAB: u32 = u32::MAX;

/// Words to (context, target) pairs, as `Examples::encode` makes them.
struct Encoding {
    vocab: Vocab,
    /// The index of each ASCII character (the common case, looked up without a search);
    /// [`NOT_IN_VOCAB`] for the other bytes.
    byte_index: [u32; 256],
    /// For clean blocks: the index of each [`is_clean`] character of the vocabulary, 0 (the
    /// boundary that ends a word) for '\n', [`NOT_IN_VOCAB`] for every other byte.
    clean_symbol: [u32; 256],
    context_len: usize,
    num_cols: usize,
    num_rows: usize,
}

impl Encoding {
    fn new(vocab: &Vocab, context_len: usize) -> Encoding {
        let mut byte_index = [NOT_IN_VOCAB; 256];
        for (b, slot) in byte_index.iter_mut().enumerate().take(128) {
            match char::from(b as u8) {
                BOUNDARY => {}
                c => *slot = vocab.index(c).unwrap_or(NOT_IN_VOCAB),
            }
        }
        let mut clean_symbol = [NOT_IN_VOCAB; 256];
        for (b, slot) in clean_symbol.iter_mut().enumerate() {
            if is_clean(b as u8) {
                *slot = if b as u8 == b'\n' { 0 } else { byte_index[b] };
            }
        }
        let num_cols = vocab.len();
        let num_rows = crate::limits::table_rows(num_cols, context_len)
            .expect("the V^K x V table's size is checked before encoding");
        Encoding {
            vocab: vocab.clone(),
            byte_index,
            clean_symbol,
            context_len,
            num_cols,
            num_rows,
        }
    }

    /// Whether a block is clean (only [`is_clean`] bytes, every character in the vocabulary):
    /// each non-empty line is then a word as it stands, and each byte one symbol.
    fn is_clean_block(&self, bytes: &[u8]) -> bool {
        let seen = bytes_seen(bytes);
        (0..256).all(|b| !seen[b] || self.clean_symbol[b] != NOT_IN_VOCAB)
    }

    /// The next context after `target`: the last K symbols as a base-V number. Inside a word
    /// it is never 0 (its last digit is a character's index, not the boundary's 0).
    fn next_context(&self, context: usize, target: u32) -> usize {
        // With K = 1 the context is the last symbol (no division on the common path).
        if self.context_len == 1 {
            target as usize
        } else {
            (context * self.num_cols + target as usize) % self.num_rows
        }
    }

    /// [`Encoding::encode`] of a clean block: the same pairs, from one loop over the bytes
    /// ('\n' ends the word before it, if any). None, with no pair handed out, for any other
    /// block.
    fn encode_clean(&self, bytes: &[u8], pair: &mut impl FnMut(u32, u32)) -> Option<()> {
        if !self.is_clean_block(bytes) {
            return None;
        }
        let mut context = 0usize;
        for &b in bytes {
            let target = self.clean_symbol[b as usize];
            if b != b'\n' {
                pair(context as u32, target);
                context = self.next_context(context, target);
            } else if context != 0 {
                pair(context as u32, 0);
                context = 0;
            }
        }
        if context != 0 {
            pair(context as u32, 0);
        }
        Some(())
    }

    /// Adds the pairs of a clean block into `counts` (`counts[context * V + target] += 1`),
    /// as [`Encoding::encode_clean`] hands them out, and returns their number; None, with
    /// nothing added, for any other block. Without a branch per line: every '\n' adds the
    /// pair (context, 0), which for a blank line (context 0) is the pair (0, 0) that no word
    /// has; cell 0 gets its count back at the end.
    fn count_clean(&self, bytes: &[u8], counts: &mut [u32]) -> Option<u64> {
        if !self.is_clean_block(bytes) {
            return None;
        }
        let v = self.num_cols;
        if self.context_len == 1 {
            return Some(self.count_clean_bigrams(bytes, counts));
        }
        let before = counts[0];
        let mut context = 0usize;
        for &b in bytes {
            let target = self.clean_symbol[b as usize];
            counts[context * v + target as usize] += 1;
            context = if target == 0 {
                0
            } else {
                self.next_context(context, target)
            };
        }
        let blank_lines = counts[0].wrapping_sub(before);
        counts[0] = before;
        let mut pairs = bytes.len() as u64 - blank_lines as u64;
        if context != 0 {
            counts[context * v] += 1;
            pairs += 1;
        }
        Some(pairs)
    }

    /// [`Encoding::count_clean`] with K = 1 for a clean block: the pairs of bytes (each
    /// clean byte is ASCII, below 128) are counted first, '\n' standing before the text;
    /// then (a, b) counts for the pair (symbol of a, symbol of b), where a '\n' is the
    /// boundary 0, except that ('\n', '\n') is a blank line and no pair.
    fn count_clean_bigrams(&self, bytes: &[u8], counts: &mut [u32]) -> u64 {
        let mut by_bytes = vec![0u32; 128 * 128];
        let mut prev = b'\n';
        for &b in bytes {
            by_bytes[((prev as usize) << 7 | b as usize) & (128 * 128 - 1)] += 1;
            prev = b;
        }
        let symbol = |b: u8| self.clean_symbol[b as usize] as usize;
        let seen: Vec<u8> = (0..128u8)
            .filter(|&b| self.clean_symbol[b as usize] != NOT_IN_VOCAB)
            .collect();
        let (v, mut pairs) = (self.num_cols, 0u64);
        for &a in &seen {
            for &b in &seen {
                let n = by_bytes[(a as usize) << 7 | b as usize];
                if n > 0 && (a, b) != (b'\n', b'\n') {
                    counts[symbol(a) * v + symbol(b)] += n;
                    pairs += n as u64;
                }
            }
        }
        // The text's last word, without a '\n'.
        if prev != b'\n' {
            counts[symbol(prev) * v] += 1;
            pairs += 1;
        }
        pairs
    }

    /// Adds the pairs of any block into `counts` and returns their number.
    fn count(&self, block: &Block<'_>, counts: &mut [u32]) -> Result<u64, UnknownChar> {
        if let Some(pairs) = self.count_clean(block.text.as_bytes(), counts) {
            return Ok(pairs);
        }
        let (v, mut pairs) = (self.num_cols, 0u64);
        self.encode(block, &mut |context, target| {
            counts[context as usize * v + target as usize] += 1;
            pairs += 1;
        })?;
        Ok(pairs)
    }

    /// Hands every pair of a block's words to `pair(context, target)`.
    fn encode(
        &self,
        block: &Block<'_>,
        pair: &mut impl FnMut(u32, u32),
    ) -> Result<(), UnknownChar> {
        let (v, rows) = (self.num_cols, self.num_rows);
        for (_, word) in words(block) {
            // The context as a base-V number of the last K symbols: all `.` (0) at the start.
            let mut context = 0usize;
            let mut push = |target: u32| {
                pair(context as u32, target);
                // With K = 1 the context is the last symbol (no division on the common path).
                context = if self.context_len == 1 {
                    target as usize
                } else {
                    (context * v + target as usize) % rows
                };
            };
            let unknown = |ch| UnknownChar {
                word: word.to_string(),
                ch,
            };
            // ASCII characters byte by byte; at the first other byte, the rest of the word
            // character by character.
            let ascii_pairs =
                word.bytes()
                    .try_fold((), |(), b| match self.byte_index[b as usize] {
                        NOT_IN_VOCAB => Err(b),
                        target => {
                            push(target);
                            Ok(())
                        }
                    });
            match ascii_pairs {
                Ok(()) => {}
                Err(b) if b.is_ascii() => return Err(unknown(char::from(b))),
                Err(_) => {
                    let done = word.bytes().take_while(u8::is_ascii).count();
                    for c in word[done..].chars() {
                        match self.vocab.index(c) {
                            Some(target) if c != BOUNDARY => push(target),
                            _ => return Err(unknown(c)),
                        }
                    }
                }
            }
            push(0);
        }
        Ok(())
    }
}

/// The second pass: every word of a text encoded as `Examples::encode` encodes it, one batch
/// of pairs per block.
pub struct PairEncoder<R> {
    blocks: Blocks<R>,
    encoding: Encoding,
    /// Pairs the first pass counted, to notice a file that changed in between.
    expected: u64,
    handed_out: u64,
    contexts: Vec<u32>,
    targets: Vec<u32>,
}

impl PairEncoder<std::fs::File> {
    /// The pairs of a file whose first pass gave `scan`, with contexts of `context_len`
    /// characters (the caller has checked that the V^K x V table fits).
    pub fn open(
        path: &Path,
        scan: &Scan,
        context_len: usize,
        chunk_bytes: usize,
    ) -> Result<Self, DataError> {
        let name = path.display().to_string();
        Ok(PairEncoder::new(
            open(path)?,
            &name,
            scan,
            context_len,
            chunk_bytes,
        ))
    }
}

impl<R: Read> PairEncoder<R> {
    pub fn new(
        reader: R,
        name: &str,
        scan: &Scan,
        context_len: usize,
        chunk_bytes: usize,
    ) -> PairEncoder<R> {
        PairEncoder {
            blocks: Blocks::new(reader, name, chunk_bytes),
            encoding: Encoding::new(&scan.vocab, context_len),
            expected: scan.examples,
            handed_out: 0,
            contexts: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// The rows of the V^K x V table the contexts index.
    pub fn num_rows(&self) -> usize {
        self.encoding.num_rows
    }

    /// Encodes the next block, handing its pairs to `pair`; false at the end of the text,
    /// where a different number of pairs than the first pass's is an error.
    fn encode_block(&mut self, pair: &mut impl FnMut(u32, u32)) -> Result<bool, PairError> {
        let Some(block) = self.blocks.next_block()? else {
            if self.handed_out != self.expected {
                return Err(PairError::Changed {
                    path: self.blocks.name.clone(),
                    first: self.expected,
                    second: self.handed_out,
                });
            }
            return Ok(false);
        };
        let mut pairs = 0u64;
        let mut count = |context, target| {
            pairs += 1;
            pair(context, target);
        };
        let encoding = &self.encoding;
        if encoding
            .encode_clean(block.text.as_bytes(), &mut count)
            .is_none()
        {
            encoding.encode(&block, &mut count)?;
        }
        self.handed_out += pairs;
        Ok(true)
    }
}

impl<R: Read> PairBatches for PairEncoder<R> {
    fn next_batch(&mut self) -> anyhow::Result<Option<PairBatch<'_>>> {
        let (mut contexts, mut targets) = (
            std::mem::take(&mut self.contexts),
            std::mem::take(&mut self.targets),
        );
        contexts.clear();
        targets.clear();
        let more = self.encode_block(&mut |context, target| {
            contexts.push(context);
            targets.push(target);
        })?;
        self.contexts = contexts;
        self.targets = targets;
        Ok(more.then_some(PairBatch {
            contexts: &self.contexts,
            targets: &self.targets,
        }))
    }

    fn num_cols(&self) -> usize {
        self.encoding.num_cols
    }

    /// Each block cut into [`threads`] parts of whole lines, counted at once, each thread
    /// into its own table (the first into `counts`); the tables are summed at the end, which
    /// in u32 is exact in any order. One table only when a copy would take more than
    /// [`MAX_THREAD_TABLE_BYTES`].
    fn count_into(&mut self, counts: &mut [u32]) -> anyhow::Result<()> {
        let threads = if std::mem::size_of_val(counts) > MAX_THREAD_TABLE_BYTES {
            1
        } else {
            threads()
        };
        let mut tables: Vec<Vec<u32>> = vec![vec![0; counts.len()]; threads - 1];
        let encoding = &self.encoding;
        while let Some(block) = self.blocks.next_block()? {
            let parts = split_block(&block, threads);
            let mut results = std::thread::scope(|s| {
                let handles: Vec<_> = parts[1..]
                    .iter()
                    .zip(tables.iter_mut())
                    .map(|(part, table)| s.spawn(move || encoding.count(part, table)))
                    .collect();
                let mut results = vec![encoding.count(&parts[0], counts)];
                results.extend(handles.into_iter().map(join));
                results
            });
            for pairs in results.drain(..) {
                self.handed_out += pairs?;
            }
        }
        if self.handed_out != self.expected {
            return Err(PairError::Changed {
                path: self.blocks.name.clone(),
                first: self.expected,
                second: self.handed_out,
            }
            .into());
        }
        for table in &tables {
            for (all, part) in counts.iter_mut().zip(table) {
                *all += part;
            }
        }
        Ok(())
    }
}

/// The V^K x V count table of a corpus, and the number of pairs it counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountTable {
    pub counts: Vec<u32>,
    pub num_cols: usize,
    /// The sum of the counts: the number of examples.
    pub examples: usize,
}

impl CountTable {
    /// A table from its counts (the examples are their sum).
    pub fn new(counts: Vec<u32>, num_cols: usize) -> CountTable {
        let examples = counts.iter().map(|&n| n as u64).sum::<u64>() as usize;
        CountTable {
            counts,
            num_cols,
            examples,
        }
    }
}

/// The most pairs a u32 count table holds: no cell can wrap when the total is within it.
pub fn check_countable(examples: u64, source: &str) -> anyhow::Result<()> {
    if examples > u32::MAX as u64 {
        anyhow::bail!(
            "{source} has {examples} (context, next) pairs, more than the {} that the u32 count table can count; split the file",
            u32::MAX
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{parse_words, Examples};

    /// Every block of a text read with blocks of `chunk` bytes.
    fn blocks(text: &[u8], chunk: usize) -> Result<Vec<(String, usize)>, DataError> {
        let mut blocks = Blocks::new(text, "t", chunk);
        let mut out = Vec::new();
        while let Some(b) = blocks.next_block()? {
            out.push((b.text.to_string(), b.first_line));
        }
        Ok(out)
    }

    #[test]
    fn blocks_are_whole_lines_that_add_up_to_the_text() {
        let text = "ann\nbob\r\ncé\n\nzoë\nlast";
        for chunk in [1, 2, 3, 5, 8, 100] {
            let got = blocks(text.as_bytes(), chunk).unwrap();
            let joined: String = got.iter().map(|(t, _)| t.as_str()).collect();
            assert_eq!(joined, text, "chunk {chunk}");
            let mut line = 1;
            for (t, first) in &got {
                assert_eq!(*first, line, "chunk {chunk}");
                assert!(t.ends_with('\n') || t.ends_with("last"), "{t:?}");
                line += t.matches('\n').count();
            }
            if chunk >= 100 {
                assert_eq!(got.len(), 1);
            }
        }
    }

    #[test]
    fn the_byte_order_mark_goes_only_at_the_start() {
        let text = "\u{feff}ann\n\u{feff}bob\n";
        let got = blocks(text.as_bytes(), 2).unwrap();
        assert_eq!(got[0].0, "ann\n");
        assert_eq!(got[1].0, "\u{feff}bob\n");
    }

    #[test]
    fn invalid_utf8_has_the_in_memory_readers_line_and_offset() {
        let mut text = b"ann\nbob\nc".to_vec();
        text.extend([0xC3, b'\n', b'x', 0xFF, b'\n']);
        for chunk in [1, 2, 4, 9, 10, 11, 64] {
            let err = blocks(&text, chunk).unwrap_err();
            assert!(
                matches!(
                    err,
                    DataError::InvalidUtf8 {
                        line: 3,
                        offset: 9,
                        ..
                    }
                ),
                "chunk {chunk}: {err}"
            );
        }
        // A character cut off by the end of the text.
        let err = blocks(&[b'a', b'\n', 0xE2, 0x82], 1).unwrap_err();
        assert!(matches!(
            err,
            DataError::InvalidUtf8 {
                line: 2,
                offset: 2,
                ..
            }
        ));
    }

    /// The first pass's results, or its error, against `parse_words` on the same text.
    fn scan_matches_parse(text: &str) {
        for chunk in [1, 3, 7, 1 << 20] {
            let scanned = scan_reader(text.as_bytes(), "t", chunk);
            match parse_words(text, "t") {
                Ok(words) => {
                    let scan = scanned.unwrap();
                    let stats = WordStats::of(&words);
                    assert_eq!(scan.vocab, Vocab::from_words(&words));
                    assert_eq!(
                        (scan.stats.words, scan.stats.shortest, scan.stats.longest),
                        (stats.words, stats.shortest, stats.longest)
                    );
                    let ex = Examples::encode(&words, &scan.vocab, 2).unwrap();
                    assert_eq!(scan.examples, ex.len() as u64);
                }
                Err(expected) => {
                    assert_eq!(scanned.unwrap_err().to_string(), expected.to_string())
                }
            }
        }
    }

    #[test]
    fn the_first_pass_agrees_with_parse_words() {
        scan_matches_parse("\u{feff}ann\r\n\r\n  bob \r\nzoë\u{a0}\n\tx y\n");
        scan_matches_parse("emma\nolivia\nava");
        scan_matches_parse(" \n\r\n\n");
        scan_matches_parse("ann\nb.b\nc.c\n");
        scan_matches_parse("日本\n語\r\n");
    }

    #[test]
    fn pairs_are_those_of_examples_encode() {
        let text = "\u{feff}emma\r\nzoë\n\n ab c \nq";
        let words = parse_words(text, "t").unwrap();
        for context_len in [1, 2, 3] {
            for chunk in [1, 2, 5, 1 << 20] {
                let scan = scan_reader(text.as_bytes(), "t", chunk).unwrap();
                let expected = Examples::encode(&words, &scan.vocab, context_len).unwrap();
                let mut encoder = PairEncoder::new(text.as_bytes(), "t", &scan, context_len, chunk);
                let (mut contexts, mut targets) = (Vec::new(), Vec::new());
                while let Some(batch) = encoder.next_batch().unwrap() {
                    contexts.extend_from_slice(batch.contexts);
                    targets.extend_from_slice(batch.targets);
                }
                assert_eq!(contexts, expected.contexts, "K {context_len} chunk {chunk}");
                assert_eq!(targets, expected.targets, "K {context_len} chunk {chunk}");
            }
        }
    }

    /// Random texts of short lines: clean ones (letters, digits and '\n', blank lines among
    /// them) and, when `unclean`, with a sprinkling of the characters that need the general
    /// path (spaces, '\r', '\t', '.', a control character, non-ASCII).
    fn random_texts(unclean: bool) -> Vec<String> {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(if unclean { 2 } else { 1 });
        let clean = ['a', 'b', 'c', 'z', 'Q', '7', '~', '!', '\n', '\n'];
        let others = [' ', '\r', '\t', '.', '\u{1}', 'é', '日', '\u{a0}'];
        (0..300)
            .map(|_| {
                let len = rng.random_range(0..40usize);
                (0..len)
                    .map(|_| {
                        if unclean && rng.random_range(0..12u8) == 0 {
                            others[rng.random_range(0..others.len())]
                        } else {
                            clean[rng.random_range(0..clean.len())]
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// The fields of a scan, to compare.
    fn scan_fields(part: &ScanPart) -> (Vec<bool>, Vec<char>, String, [u64; 4]) {
        (
            part.byte_seen.to_vec(),
            part.others.iter().copied().collect(),
            format!("{:?}", part.boundary_in_word),
            [
                part.words,
                part.shortest,
                part.longest,
                part.examples as usize,
            ]
            .map(|n| n as u64),
        )
    }

    #[test]
    fn clean_blocks_scan_as_their_words_do() {
        let (mut fast, mut slow) = (0, 0);
        for unclean in [false, true] {
            for text in random_texts(unclean) {
                let block = Block {
                    text: &text,
                    first_line: 5,
                };
                let mut words = ScanPart::default();
                words.add_words(&block, "t");
                let mut clean = ScanPart::default();
                if clean.add_clean(text.as_bytes()) {
                    assert!(text.bytes().all(is_clean), "{text:?}");
                    assert_eq!(scan_fields(&clean), scan_fields(&words), "{text:?}");
                    fast += 1;
                } else {
                    assert!(!text.bytes().all(is_clean), "{text:?}");
                    assert_eq!(scan_fields(&clean), scan_fields(&ScanPart::default()));
                    slow += 1;
                }
            }
        }
        assert!(fast > 250 && slow > 150, "{fast} clean, {slow} not");
    }

    #[test]
    fn clean_blocks_encode_and_count_as_their_words_do() {
        let (mut fast, mut slow) = (0, 0);
        for unclean in [false, true] {
            let texts = random_texts(unclean);
            // One vocabulary for all the texts, without '.' (which no word may have).
            let all: String = texts.concat().replace('.', "");
            let mut found = ScanPart::default();
            found.add_words(
                &Block {
                    text: &all,
                    first_line: 1,
                },
                "t",
            );
            let scan = found.finish("t").unwrap();
            for context_len in 1..=3 {
                let encoding = Encoding::new(&scan.vocab, context_len);
                let cells = encoding.num_rows * encoding.num_cols;
                for text in &texts {
                    let block = Block {
                        text,
                        first_line: 1,
                    };
                    let mut words = Vec::new();
                    let by_words = encoding.encode(&block, &mut |c, t| words.push((c, t)));
                    let mut clean = Vec::new();
                    let fast_path =
                        encoding.encode_clean(text.as_bytes(), &mut |c, t| clean.push((c, t)));
                    let mut counts = vec![0u32; cells];
                    let counted = encoding.count_clean(text.as_bytes(), &mut counts);
                    assert_eq!(fast_path.is_some(), counted.is_some(), "{text:?}");
                    if fast_path.is_some() {
                        assert!(by_words.is_ok(), "{text:?}");
                        assert_eq!(clean, words, "K {context_len} {text:?}");
                        let mut expected = vec![0u32; cells];
                        for &(c, t) in &words {
                            expected[c as usize * encoding.num_cols + t as usize] += 1;
                        }
                        assert_eq!(counts, expected, "K {context_len} {text:?}");
                        assert_eq!(counted, Some(words.len() as u64));
                        fast += 1;
                    } else {
                        assert!(clean.is_empty() && counts.iter().all(|&n| n == 0));
                        let mut general = vec![0u32; cells];
                        let pairs = encoding.count(&block, &mut general);
                        assert_eq!(pairs.ok(), by_words.ok().map(|()| words.len() as u64));
                        slow += 1;
                    }
                }
            }
        }
        assert!(fast > 750 && slow > 450, "{fast} clean, {slow} not");
    }

    #[test]
    fn split_blocks_are_whole_lines_that_add_up_to_the_block() {
        let text = "ann\n\nbob\r\ncé\nzoë\nx\nlast";
        for n in 1..=5 {
            for start in 0..text.len() {
                if !text.is_char_boundary(start) || (start > 0 && !text[..start].ends_with('\n')) {
                    continue;
                }
                let block = Block {
                    text: &text[start..],
                    first_line: 3,
                };
                let parts = split_block(&block, n);
                assert!(!parts.is_empty() && parts.len() <= n);
                let joined: String = parts.iter().map(|p| p.text).collect();
                assert_eq!(joined, block.text);
                let mut line = 3;
                for (i, part) in parts.iter().enumerate() {
                    assert_eq!(part.first_line, line, "n {n} from {start}");
                    assert!(i + 1 == parts.len() || part.text.ends_with('\n'));
                    assert!(i + 1 == parts.len() || !part.text.is_empty());
                    line += part.text.matches('\n').count();
                }
            }
        }
        // A long block is shared out.
        let long = "ab\n".repeat(1000);
        let parts = split_block(
            &Block {
                text: &long,
                first_line: 1,
            },
            4,
        );
        assert_eq!(parts.len(), 4);
    }

    #[test]
    fn threads_count_what_batches_count() {
        let text: String = random_texts(false).join("\n") + "\nzoë\n b \n";
        for context_len in 1..=3 {
            for chunk in [7, 100, 1 << 20] {
                let scan = scan_reader(text.as_bytes(), "t", chunk).unwrap();
                let mut encoder = PairEncoder::new(text.as_bytes(), "t", &scan, context_len, chunk);
                let cells = encoder.num_rows() * encoder.num_cols();
                let mut counts = vec![0u32; cells];
                encoder.count_into(&mut counts).unwrap();
                let words = parse_words(&text, "t").unwrap();
                let ex = Examples::encode(&words, &scan.vocab, context_len).unwrap();
                let mut expected = vec![0u32; cells];
                for (&c, &t) in ex.contexts.iter().zip(&ex.targets) {
                    expected[c as usize * encoder.num_cols() + t as usize] += 1;
                }
                assert_eq!(counts, expected, "K {context_len} chunk {chunk}");
            }
        }
    }

    #[test]
    fn a_text_that_changed_between_the_passes_is_an_error() {
        let scan = scan_reader(&b"ab\nba\n"[..], "t", 4).unwrap();
        let mut encoder = PairEncoder::new(&b"ab\nbac\n"[..], "t", &scan, 1, 4);
        let err = loop {
            match encoder.next_batch() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the unknown character went unnoticed"),
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("'c'"), "{err}");
        let mut encoder = PairEncoder::new(&b"ab\n"[..], "t", &scan, 1, 4);
        while let Ok(Some(_)) = encoder.next_batch() {}
        let mut encoder = PairEncoder::new(&b"ab\n"[..], "t", &scan, 1, 4);
        let err = std::iter::from_fn(|| match encoder.next_batch() {
            Ok(Some(_)) => Some(None),
            Ok(None) => None,
            Err(e) => Some(Some(e.to_string())),
        })
        .flatten()
        .next()
        .unwrap();
        assert!(err.contains("changed while it was read"), "{err}");
    }
}
