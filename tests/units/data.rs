//! The data path: words, vocabulary and pairs held whole (data.rs) or streamed in blocks
//! (corpus.rs), the train/dev/test split, the limits checked before anything is allocated,
//! and the drivers' stderr kept out of the tool's.

use makemore::corpus::{scan_reader, Batch, Blocks, PairBatches, PairEncoder, Scan};
use makemore::data::{parse_words, DataError, Examples, Vocab, WordStats};
use makemore::limits::{
    check_context, check_text_fits, table_bytes, table_rows, ContextTooLong, TableLimit,
    TableTooLarge, VocabTooLarge, MAX_VOCAB,
};
use makemore::split::Split;

#[test]
fn words_encode_as_the_lecture_shows() {
    let vocab = Vocab::from_words(&["emma"]);
    assert_eq!(vocab.to_string(), ".aem");
    let ex = Examples::encode(&["emma"], &vocab, 1).unwrap();
    // .e em mm ma a.
    assert_eq!(
        (ex.contexts, ex.targets),
        (vec![0, 2, 3, 3, 1], vec![2, 3, 3, 1, 0])
    );
    // Trigram contexts are base-V numbers: .. .a ab -> 0, 0*3+1, 1*3+2 (. a b).
    let ex = Examples::encode(&["ab"], &Vocab::from_words(&["ab"]), 2).unwrap();
    assert_eq!((ex.contexts, ex.targets), (vec![0, 1, 5], vec![1, 2, 0]));
    assert_eq!(ex.num_rows, 9);
}

#[test]
fn parse_accepts_bom_crlf_and_blank_lines() {
    let words = parse_words("\u{feff}ann\r\n\r\n  bob \r\n", "t").unwrap();
    assert_eq!(words, vec!["ann", "bob"]);
    let empty = parse_words(" \n\n", "t");
    assert!(matches!(empty, Err(DataError::Empty { .. })));
    let dot = parse_words("a.b", "t");
    assert!(matches!(
        dot,
        Err(DataError::BoundaryInWord { line: 1, .. })
    ));
}

#[test]
fn a_vocabulary_must_be_the_boundary_then_sorted_distinct_characters() {
    assert!(Vocab::from_chars(".abc".chars().collect()).is_ok());
    for (chars, reason) in [
        ("abc", "does not start with '.'"),
        (".acb", "'c' then 'b': out of order"),
        (".abb", "'b' then 'b': twice"),
        ("..a", "twice"),
        ("", "does not start"),
    ] {
        let err = Vocab::from_chars(chars.chars().collect()).unwrap_err();
        assert!(err.contains(reason), "{chars:?}: {err}");
    }
}

#[test]
fn grouping_is_a_stable_sort_by_context() {
    let words = ["abba", "bab"];
    let ex = Examples::encode(&words, &Vocab::from_words(&words), 1).unwrap();
    let g = ex.grouped_by_context();
    assert_eq!(g.row_offsets.len(), 4);
    for r in 0..3 {
        let run = g.row_offsets[r] as usize..g.row_offsets[r + 1] as usize;
        assert!(g.examples.contexts[run.clone()]
            .iter()
            .all(|&c| c == r as u32));
        let original = (0..ex.len()).filter(|&i| ex.contexts[i] == r as u32);
        let original: Vec<u32> = original.map(|i| ex.targets[i]).collect();
        assert_eq!(g.examples.targets[run].to_vec(), original);
    }
}

/// Every block of a text read with blocks of `size` bytes.
fn blocks(text: &[u8], size: usize) -> Result<Vec<(String, usize)>, DataError> {
    let mut blocks = Blocks::new(text, "t", size);
    let mut out = Vec::new();
    while let Some(b) = blocks.next_block()? {
        out.push((b.text.to_string(), b.first_line));
    }
    Ok(out)
}

#[test]
fn blocks_are_whole_lines_that_add_up_to_the_text() {
    let text = "ann\nbob\r\ncé\n\nzoë\nlast";
    for size in [1, 2, 3, 5, 8, 100] {
        let got = blocks(text.as_bytes(), size).unwrap();
        assert_eq!(
            got.iter().map(|(t, _)| t.as_str()).collect::<String>(),
            text
        );
        let mut line = 1;
        for (t, first) in &got {
            assert_eq!(*first, line, "size {size}");
            assert!(t.ends_with('\n') || t.ends_with("last"), "{t:?}");
            line += t.matches('\n').count();
        }
        assert!(size < 100 || got.len() == 1);
    }
    // The byte-order mark goes only at the start.
    let got = blocks("\u{feff}ann\n\u{feff}bob\n".as_bytes(), 2).unwrap();
    assert_eq!([&*got[0].0, &*got[1].0], ["ann\n", "\u{feff}bob\n"]);
    // Invalid UTF-8: the line and byte offset of the in-memory reader.
    let mut text = b"ann\nbob\nc".to_vec();
    text.extend([0xC3, b'\n', b'x', 0xFF, b'\n']);
    let at = |err, l, o| matches!(err, DataError::InvalidUtf8 { line, offset, .. } if (line, offset) == (l, o));
    for size in [1, 2, 4, 9, 10, 11, 64] {
        assert!(at(blocks(&text, size).unwrap_err(), 3, 9), "size {size}");
    }
    // A character cut off by the end of the text.
    assert!(at(blocks(&[b'a', b'\n', 0xE2, 0x82], 1).unwrap_err(), 2, 2));
}

/// The first pass over `text` in blocks of `size` against `parse_words`: the same error, or
/// the same vocabulary, word statistics and number of pairs.
fn assert_scan_agrees(text: &str, size: usize) {
    let scanned = scan_reader(text.as_bytes(), "t", size);
    let words = match parse_words(text, "t") {
        Ok(words) => words,
        Err(expected) => {
            assert_eq!(scanned.unwrap_err().to_string(), expected.to_string());
            return;
        }
    };
    let (scan, stats) = (scanned.unwrap(), WordStats::of(&words));
    assert_eq!(scan.vocab, Vocab::from_words(&words), "{text:?}");
    let s = &scan.stats;
    let got = (s.words, s.shortest, s.longest);
    assert_eq!(
        got,
        (stats.words, stats.shortest, stats.longest),
        "{text:?}"
    );
    let ex = Examples::encode(&words, &scan.vocab, 2).unwrap();
    assert_eq!(scan.examples, ex.len() as u64, "{text:?}");
}

#[test]
fn the_first_pass_agrees_with_parse_words() {
    let texts = [
        "\u{feff}ann\r\n\r\n  bob \r\nzoë\u{a0}\n\tx y\n",
        "emma\nolivia\nava",
    ];
    for text in texts
        .into_iter()
        .chain([" \n\r\n\n", "ann\nb.b\nc.c\n", "日本\n語\r\n"])
    {
        for size in [1, 3, 7, 1 << 20] {
            assert_scan_agrees(text, size);
        }
    }
}

/// The pairs of `text` encoded in blocks of `size` (after a first pass that gave `scan`),
/// and the same pairs counted into a table; or the errors.
type Pairs = Result<(Vec<u32>, Vec<u32>), String>;
fn encode_and_count(
    text: &str,
    scan: &Scan,
    k: usize,
    size: usize,
) -> (Pairs, Result<Vec<u32>, String>) {
    let encoder = || PairEncoder::new(text.as_bytes(), "t", scan, k, size);
    let mut pairs = encoder();
    let (mut contexts, mut targets) = (Vec::new(), Vec::new());
    let encoded = loop {
        match pairs.next_batch(0) {
            Ok(Some(Batch::Pairs {
                contexts: c,
                targets: t,
            })) => {
                contexts.extend_from_slice(c);
                targets.extend_from_slice(t);
            }
            Ok(Some(Batch::Text(_))) => unreachable!("no text batches were asked for"),
            Ok(None) => match pairs.check_total(targets.len() as u64) {
                Ok(()) => break Ok((contexts, targets)),
                Err(e) => break Err(e.to_string()),
            },
            Err(e) => break Err(e.to_string()),
        }
    };
    let mut counts = vec![0u32; pairs.num_rows() * scan.vocab.len()];
    let counted = encoder().count_into(&mut counts).map_err(|e| e.to_string());
    (encoded, counted.map(|()| counts))
}

/// The V^K x V count table of some pairs.
fn count_table(ex: &Examples) -> Vec<u32> {
    let mut counts = vec![0u32; ex.num_rows * ex.num_cols];
    for (&c, &t) in ex.contexts.iter().zip(&ex.targets) {
        counts[c as usize * ex.num_cols + t as usize] += 1;
    }
    counts
}

#[test]
fn pairs_and_counts_are_those_of_examples_encode() {
    let random: String = random_texts(false).join("\n") + "\nzoë\n b \n";
    let texts = [
        ("\u{feff}emma\r\nzoë\n\n ab c \nq", [1, 2, 5]),
        (&*random, [7, 100, 1000]),
    ];
    for ((text, sizes), k) in texts.into_iter().flat_map(|t| [(t, 1), (t, 2), (t, 3)]) {
        let words = parse_words(text, "t").unwrap();
        let ex = Examples::encode(&words, &Vocab::from_words(&words), k).unwrap();
        for size in sizes.into_iter().chain([1 << 20]) {
            let scan = scan_reader(text.as_bytes(), "t", size).unwrap();
            let (pairs, counts) = encode_and_count(text, &scan, k, size);
            let what = format!("K {k} size {size}");
            assert_eq!(
                pairs.unwrap(),
                (ex.contexts.clone(), ex.targets.clone()),
                "{what}"
            );
            assert_eq!(counts.unwrap(), count_table(&ex), "{what}");
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
    let texts = (0..300).map(|_| {
        let len = rng.random_range(0..40usize);
        let mut char = || match unclean && rng.random_range(0..12u8) == 0 {
            true => others[rng.random_range(0..others.len())],
            false => clean[rng.random_range(0..clean.len())],
        };
        (0..len).map(|_| char()).collect()
    });
    texts.collect()
}

/// Clean texts ('\n' and printable ASCII but ' ' and '.', every character in the vocabulary)
/// take a fast path of one loop over the bytes; the others go word by word. Both give what
/// the words give.
#[test]
fn clean_blocks_scan_encode_and_count_as_their_words_do() {
    let is_clean = |b: u8| b == b'\n' || (b'!'..=b'~').contains(&b) && b != b'.';
    let (mut fast, mut slow) = ([0; 2], [0; 2]);
    for unclean in [false, true] {
        let texts = random_texts(unclean);
        for text in &texts {
            assert_scan_agrees(text, 1 << 20);
            [&mut slow, &mut fast][text.bytes().all(is_clean) as usize][0] += 1;
        }
        // One vocabulary for all the texts, without '.' (which no word may have).
        let all = scan_reader(texts.concat().replace('.', "").as_bytes(), "t", 1 << 20).unwrap();
        for (k, text) in (1..=3).flat_map(|k| texts.iter().map(move |t| (k, t))) {
            let words: Vec<&str> = text
                .split('\n')
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .collect();
            let expected = Examples::encode(&words, &all.vocab, k);
            let examples = expected.as_ref().map_or(0, |ex| ex.len() as u64);
            let scan = Scan {
                examples,
                ..all.clone()
            };
            let (pairs, counts) = encode_and_count(text, &scan, k, 1 << 20);
            let what = format!("K {k} {text:?}");
            match expected {
                Ok(ex) => {
                    assert_eq!(
                        pairs.unwrap(),
                        (ex.contexts.clone(), ex.targets.clone()),
                        "{what}"
                    );
                    assert_eq!(counts.unwrap(), count_table(&ex), "{what}");
                }
                Err(err) => {
                    assert_eq!(pairs.unwrap_err(), err.to_string(), "{what}");
                    assert_eq!(counts.unwrap_err(), err.to_string(), "{what}");
                }
            }
            [&mut slow, &mut fast][text.bytes().all(is_clean) as usize][1] += 1;
        }
    }
    assert!(
        fast[0] > 250 && slow[0] > 150,
        "{fast:?} clean, {slow:?} not"
    );
    assert!(
        fast[1] > 750 && slow[1] > 450,
        "{fast:?} clean, {slow:?} not"
    );
}

#[test]
fn a_text_that_changed_between_the_passes_is_an_error() {
    let scan = scan_reader(&b"ab\nba\n"[..], "t", 4).unwrap();
    let all_batches = |text| encode_and_count(text, &scan, 1, 4);
    let (pairs, counts) = all_batches("ab\nbac\n");
    for err in [pairs.unwrap_err(), counts.unwrap_err()] {
        assert!(
            err.contains("'c'"),
            "the unknown character is noticed: {err}"
        );
    }
    let (pairs, counts) = all_batches("ab\n");
    for err in [pairs.unwrap_err(), counts.unwrap_err()] {
        assert!(err.contains("changed while it was read"), "{err}");
    }
    let (pairs, counts) = all_batches("ba\nab\n");
    assert!(pairs.is_ok() && counts.is_ok());
}

#[test]
fn parses_three_percentages_summing_to_100() {
    let s: Split = "80/10/10".parse().unwrap();
    assert_eq!((s.train, s.dev, s.test), (80.0, 10.0, 10.0));
    assert_eq!("80, 10, 10".parse::<Split>().unwrap(), s);
    assert!(["100/0/0", "33.5/33.5/33"]
        .iter()
        .all(|s| s.parse::<Split>().is_ok()));
    for bad in [
        "80/10",
        "80/10/20",
        "-10/60/50",
        "a/b/c",
        "0/50/50",
        "80/10/10/0",
        "80,10/5,5",
        "",
    ] {
        let err = bad.parse::<Split>().unwrap_err().to_string();
        assert!(err.contains("e.g. 80/10/10"), "{bad}: {err}");
        assert!(!err.contains('\n'));
    }
}

#[test]
fn split_is_a_seeded_partition() {
    let words: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
    let split: Split = "80/10/10".parse().unwrap();
    let parts = split.apply(&words, 7);
    let lens = [&parts.train, &parts.dev, &parts.test].map(Vec::len);
    assert_eq!(lens, [800, 100, 100]);
    let mut all: Vec<String> = [&parts.train[..], &parts.dev[..], &parts.test[..]].concat();
    assert_ne!(all, words, "the words are shuffled");
    let mut sorted = words.clone();
    all.sort();
    sorted.sort();
    assert_eq!(all, sorted);
    assert_eq!(split.apply(&words, 7), parts);
    assert_ne!(split.apply(&words, 8), parts);
}

fn limit(max_bytes: u64) -> TableLimit {
    let name = "test_limit".to_string();
    TableLimit { max_bytes, name }
}

/// The error of a context too long for a vocabulary within the limit.
fn too_long(vocab_size: usize, context_len: usize, limit: &TableLimit) -> ContextTooLong {
    match check_context(vocab_size, context_len, limit) {
        Err(TableTooLarge::Context(err)) => err,
        other => panic!("{other:?}"),
    }
}

#[test]
fn contexts_fit_under_the_limits_or_say_what_does() {
    // 27^2 x 27 x 4 = 78,732 bytes.
    assert_eq!(table_bytes(27, 2), 78_732);
    assert!(check_context(27, 2, &limit(78_732)).is_ok());
    let err = too_long(27, 5, &limit(128 << 20));
    assert_eq!(err.largest, Some(4)); // 27^4 x 27 x 4 = 57.4 MB
    let message = err.to_string();
    for part in [
        "context 5",
        "1549681956 bytes = 1.44 GiB",
        "test_limit of 134217728 bytes = 128.00 MiB",
        "the largest context that fits is 4",
    ] {
        assert!(message.contains(part), "{message}");
    }
    // Nothing fits under a tiny limit, and huge K saturates.
    let err = too_long(27, 3, &limit(100));
    assert_eq!(err.largest, None);
    assert!(err.to_string().contains("not even a context of 1 fits"));
    let err = too_long(1000, 40, &TableLimit::host());
    assert_eq!(err.asked_bytes, u128::MAX);
    assert_eq!(err.largest, Some(1)); // 1000^2 x 1000 x 4 bytes = 4 GB > 1 GiB
    let t = TableLimit::tightest([limit(10), limit(5), TableLimit::host()]);
    assert_eq!(t.max_bytes, 5);
}

#[test]
fn vocabularies_past_the_limit_are_refused_and_sizes_never_wrap() {
    assert!(check_context(MAX_VOCAB, 1, &limit(u64::MAX)).is_err()); // 16 GiB > 4 GiB
    let err = check_context(MAX_VOCAB + 1, 1, &limit(u64::MAX)).unwrap_err();
    let vocab_size = MAX_VOCAB + 1;
    assert_eq!(err, TableTooLarge::Vocab(VocabTooLarge { vocab_size }));
    assert!(err.to_string().contains("65537 distinct symbols"), "{err}");
    assert!(err.to_string().contains("limit of 65536"), "{err}");
    assert!(check_context(5000, 1, &TableLimit::host()).is_ok()); // 100 MB
    assert_eq!(table_rows(27, 2), Some(729));
    assert_eq!(table_rows(65_536, 4), None);
}

#[test]
fn a_text_is_refused_when_its_pairs_would_not_fit() {
    let (kib, mib) = (1u64 << 10, 1u64 << 20);
    assert!(check_text_fits("t.txt", mib, Some(36 * mib), "x").is_ok());
    assert!(check_text_fits("t.txt", mib, None, "x").is_ok());
    assert!(check_text_fits("t.txt", u64::MAX, None, "x").is_ok());
    let err = check_text_fits("t.txt", mib + kib, Some(36 * mib), "read less").unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("t.txt (1049600 bytes = 1.00 MiB)"),
        "{message}"
    );
    assert!(
        message.contains("about 37785600 bytes = 36.04 MiB"),
        "{message}"
    );
    assert!(message.contains("than the 37748736 bytes = 36.00 MiB available; read less"));
    assert!(!message.contains('\n'));
    // No overflow at the largest sizes.
    assert!(check_text_fits("t.txt", u64::MAX, Some(u64::MAX), "x").is_err());
}

#[cfg(unix)]
#[test]
fn what_goes_to_descriptor_2_is_captured_and_returned() {
    let (value, text) = makemore::driver_output::captured(|| {
        let line = b"a driver speaks\n";
        // SAFETY: writes a valid buffer to descriptor 2.
        unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
        7
    });
    assert_eq!((value, text.as_str()), (7, "a driver speaks\n"));
    // Descriptor 2 is restored: a second capture sees only its own text.
    assert_eq!(makemore::driver_output::captured(|| ()).1, "");
}
