//! Stage 1 of the data path: text -> words -> vocabulary -> (context, target) pairs. With
//! context length K = 1 the word `emma` is the pairs `.e em mm ma a.`: the boundary `.` (index
//! 0) marks the start and the end of every word. With K > 1 the context is the K previous
//! characters (`.` before the word's start) as one base-V number: a row of a V^K x V table.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use crate::corpus::{Blocks, Encoding};

/// The character that marks the start and the end of a word; always index 0.
pub const BOUNDARY: char = '.';

/// The project's own word list (2018 US baby names, see data/README.md), built into the binary.
pub const BUILTIN_NAMES: &str = include_str!("../data/names.txt");

/// Why a word list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is a directory, not a file of words")]
    IsDirectory { path: String },
    #[error("{path} is not valid UTF-8 (line {line}, byte offset {offset})")]
    InvalidUtf8 {
        path: String,
        line: usize,
        offset: usize,
    },
    #[error("{source_name} has no words (every line is empty or blank)")]
    Empty { source_name: String },
    #[error(
        "{source_name} line {line}: the word {word:?} contains '.', which marks the start and end of words; remove it from the input"
    )]
    BoundaryInWord {
        source_name: String,
        line: usize,
        word: String,
    },
}

/// Splits text into words: one per line, trimmed, blank lines dropped. A leading UTF-8
/// byte-order mark and CRLF line endings are accepted.
pub fn parse_words(text: &str, source_name: &str) -> Result<Vec<String>, DataError> {
    words_in(text.as_bytes(), source_name)
}

/// [`parse_words`] of a file.
pub fn read_words(path: &Path) -> Result<Vec<String>, DataError> {
    words_in(crate::corpus::open(path)?, &path.display().to_string())
}

/// The words of a text read as a corpus of one block.
fn words_in(text: impl std::io::Read, name: &str) -> Result<Vec<String>, DataError> {
    let (mut blocks, source_name) = (Blocks::new(text, name, usize::MAX), name.to_string());
    let mut words = Vec::new();
    for (line, word) in blocks.next_block()?.into_iter().flatten() {
        if word.contains(BOUNDARY) {
            let word = word.to_string();
            return Err(DataError::BoundaryInWord {
                source_name,
                line,
                word,
            });
        }
        words.push(word.to_string());
    }
    if words.is_empty() {
        return Err(DataError::Empty { source_name });
    }
    Ok(words)
}

pub fn builtin_words() -> Vec<String> {
    parse_words(BUILTIN_NAMES, "the built-in names").expect("the built-in list is valid")
}

/// The characters a model knows: `.` at index 0, then the words' characters in sorted order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    chars: Vec<char>,
}

impl Vocab {
    pub fn from_words<S: AsRef<str>>(words: &[S]) -> Vocab {
        let set: BTreeSet<char> = words.iter().flat_map(|w| w.as_ref().chars()).collect();
        let mut chars = vec![BOUNDARY];
        chars.extend(set.into_iter().filter(|&c| c != BOUNDARY));
        Vocab { chars }
    }

    /// A vocabulary from its characters in index order, or what is wrong with them.
    pub fn from_chars(chars: Vec<char>) -> Result<Vocab, String> {
        if chars.first() != Some(&BOUNDARY) {
            return Err("it does not start with '.'".to_string());
        }
        if let Some(pair) = chars[1..].windows(2).find(|pair| pair[0] >= pair[1]) {
            let (a, b) = (pair[0], pair[1]);
            let what = if a == b { "twice" } else { "out of order" };
            return Err(format!(
                "its characters are not sorted and distinct ({a:?} then {b:?}: {what})"
            ));
        }
        if chars[1..].contains(&BOUNDARY) {
            return Err("it has '.' twice".to_string());
        }
        Ok(Vocab { chars })
    }

    /// Number of symbols V, the boundary included.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Never: the boundary is always present.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn index(&self, c: char) -> Option<u32> {
        if c == BOUNDARY {
            return Some(0);
        }
        self.chars[1..].binary_search(&c).ok().map(|i| i as u32 + 1)
    }

    pub fn char(&self, index: u32) -> char {
        self.chars[index as usize]
    }
}

impl fmt::Display for Vocab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.chars.iter().try_for_each(|c| write!(f, "{c}"))
    }
}

/// (context, target) pairs: `contexts[i]`, a row of the V^K x V table, precedes `targets[i]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Examples {
    pub contexts: Vec<u32>,
    pub targets: Vec<u32>,
    /// V^K: the number of distinct contexts, the number of rows of every model's table.
    pub num_rows: usize,
    /// V: the number of symbols that can follow, the number of columns.
    pub num_cols: usize,
}

impl Examples {
    /// Encodes every word as `.w o r d.`: one pair per character plus one for the end.
    /// Characters missing from the vocabulary are an error naming the word.
    pub fn encode<S: AsRef<str>>(
        words: &[S],
        vocab: &Vocab,
        context_len: usize,
    ) -> Result<Examples, UnknownChar> {
        let encoding = Encoding::new(vocab, context_len);
        let (mut contexts, mut targets) = (Vec::new(), Vec::new());
        encoding.encode_words(words.iter().map(AsRef::as_ref), &mut |context, target| {
            contexts.push(context);
            targets.push(target);
        })?;
        Ok(Examples {
            contexts,
            targets,
            num_rows: encoding.num_rows,
            num_cols: encoding.num_cols,
        })
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The same pairs grouped by context in their original order (a stable counting sort).
    pub fn grouped_by_context(&self) -> GroupedExamples {
        let mut row_offsets = vec![0u32; self.num_rows + 1];
        for &c in &self.contexts {
            row_offsets[c as usize + 1] += 1;
        }
        for r in 0..self.num_rows {
            row_offsets[r + 1] += row_offsets[r];
        }
        let mut next = row_offsets.clone();
        let (mut contexts, mut targets) = (vec![0u32; self.len()], vec![0u32; self.len()]);
        for (&c, &t) in self.contexts.iter().zip(&self.targets) {
            let slot = &mut next[c as usize];
            contexts[*slot as usize] = c;
            targets[*slot as usize] = t;
            *slot += 1;
        }
        GroupedExamples {
            examples: Examples {
                contexts,
                targets,
                ..*self
            },
            row_offsets,
        }
    }
}

/// Pairs sorted by context: rows `row_offsets[r]..row_offsets[r + 1]` have context `r`.
#[derive(Clone, Debug)]
pub struct GroupedExamples {
    pub examples: Examples,
    pub row_offsets: Vec<u32>,
}

/// A character that the vocabulary does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the word {word:?} has the character {ch:?}, which the model's vocabulary does not have")]
pub struct UnknownChar {
    pub word: String,
    pub ch: char,
}

/// What `train` prints about its data.
#[derive(Debug, Clone)]
pub struct WordStats {
    pub words: usize,
    pub shortest: usize,
    pub longest: usize,
}

impl WordStats {
    pub fn of<S: AsRef<str>>(words: &[S]) -> WordStats {
        let lengths = words.iter().map(|w| w.as_ref().chars().count());
        WordStats {
            words: words.len(),
            shortest: lengths.clone().min().unwrap_or(0),
            longest: lengths.max().unwrap_or(0),
        }
    }
}
