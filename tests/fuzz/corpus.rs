//! The checked-in corpus (tests/fuzz/corpus/<target>/, one input per file, as cargo-fuzz keeps
//! them) and a mutation strategy over it: proptest picks a seed input and applies byte-level edits
//! (insert, delete, replace, duplicate, splice with another seed, insert a hostile token), which is
//! what a coverage-guided fuzzer does minus the coverage guidance.

use std::path::Path;

use proptest::prelude::*;
use proptest::sample::{Index, select};

/// Tokens that break parsers: quoting, escaping, separators, NUL, non-UTF-8, numbers at the edge
/// of their types, and characters that change length or meaning under Unicode rules.
const TOKENS: &[&[u8]] = &[
    b"\0",
    b"\xff",
    b"\xc3",
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"%",
    b"%00",
    b"&",
    b"=",
    b"?",
    b"#",
    b"/",
    b"//",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"null",
    b"true",
    b"-0",
    b"1e999",
    b"18446744073709551616",
    b"-",
    b"@",
    b"://",
    b"'",
    b"' OR '1'='1",
    b"\xc4\xb0",
    b"\xe2\x80\xa8",
    b"\xc2\x85",
    b"\xef\xbb\xbf",
    b" ",
    b"\t",
    b"\r\n",
    b"0000000000000000",
    b"ffffffffffffffff",
    b"limit",
    b"cursor",
    b"name",
    b"email",
    b"avatar_url",
];

#[derive(Debug, Clone)]
enum Edit {
    Insert(Index, u8),
    InsertToken(Index, Index),
    Delete(Index, Index),
    Replace(Index, u8),
    Duplicate(Index, Index),
    Splice(Index, Index, Index),
}

/// Every input of a target's corpus directory.
pub fn load(target: &str) -> Vec<Vec<u8>> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("the corpus {} is readable: {error}", directory.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    let inputs: Vec<Vec<u8>> = files
        .iter()
        .map(|path| std::fs::read(path).expect("a corpus file is readable"))
        .collect();
    assert!(!inputs.is_empty(), "the corpus {} holds inputs", directory.display());
    inputs
}

/// A corpus input with up to eight random edits.
pub fn mutated(target: &str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = load(target);
    let others = seeds.clone();
    (select(seeds), prop::collection::vec(edit(), 0..8)).prop_map(move |(mut input, edits)| {
        for edit in edits {
            apply(&mut input, edit, &others);
        }
        input
    })
}

/// A mutated corpus input as text (hyper hands paths and queries over as `&str`).
pub fn mutated_text(target: &str) -> impl Strategy<Value = String> {
    mutated(target).prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Edit::Insert(at, byte)),
        (any::<Index>(), any::<Index>()).prop_map(|(at, token)| Edit::InsertToken(at, token)),
        (any::<Index>(), any::<Index>()).prop_map(|(at, length)| Edit::Delete(at, length)),
        (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Edit::Replace(at, byte)),
        (any::<Index>(), any::<Index>()).prop_map(|(at, length)| Edit::Duplicate(at, length)),
        (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(at, other, length)| Edit::Splice(at, other, length)),
    ]
}

fn apply(input: &mut Vec<u8>, edit: Edit, others: &[Vec<u8>]) {
    let position = |index: Index, input: &Vec<u8>| index.index(input.len() + 1);
    match edit {
        Edit::Insert(at, byte) => {
            let at = position(at, input);
            input.insert(at, byte);
        }
        Edit::InsertToken(at, token) => {
            let at = position(at, input);
            let token = TOKENS[token.index(TOKENS.len())];
            input.splice(at..at, token.iter().copied());
        }
        Edit::Delete(at, length) => {
            let at = position(at, input);
            let end = (at + length.index(16) + 1).min(input.len());
            input.drain(at.min(end)..end);
        }
        Edit::Replace(at, byte) if !input.is_empty() => {
            let at = at.index(input.len());
            input[at] = byte;
        }
        Edit::Replace(..) => {}
        Edit::Duplicate(at, length) => {
            let at = position(at, input);
            let end = (at + length.index(64) + 1).min(input.len());
            let copy = input[at.min(end)..end].to_vec();
            input.splice(end..end, copy.iter().copied().cycle().take(copy.len() * 3));
        }
        Edit::Splice(at, other, length) => {
            let at = position(at, input);
            let other = &others[other.index(others.len())];
            let take = length.index(other.len() + 1);
            input.splice(at..at, other[..take].iter().copied());
        }
    }
}
