//! Which characters show nothing: the contract's rule that a blank name has nothing visible, and
//! that an email has no hidden characters.
//!
//! `INVISIBLE` is the union of two Unicode 16.0 sets, plus one character: general category Cf
//! (format characters: zero-width space and joiners, bidirectional marks, overrides and isolates,
//! the byte order mark, tags, interlinear annotation marks, prepended concatenation marks) from
//! `extracted/DerivedGeneralCategory.txt`; the Default_Ignorable_Code_Point property (the
//! above plus variation selectors, the combining grapheme joiner, the Hangul fillers U+115F,
//! U+1160, U+3164 and U+FFA0, and the code points reserved for more of them) from
//! `DerivedCoreProperties.txt`; and U+2800 BRAILLE PATTERN BLANK, a symbol that renders as
//! nothing and is popular for blank user names for exactly that reason. Ranges are listed from
//! the data files, merged and sorted; a new Unicode version can only add to them, and
//! `tests::the_table_is_sorted_and_merged` keeps the list binary-searchable.

/// Characters that render as nothing, as inclusive ranges in code point order.
pub const INVISIBLE: [(char, char); 26] = [
    ('\u{ad}', '\u{ad}'),
    ('\u{34f}', '\u{34f}'),
    ('\u{600}', '\u{605}'),
    ('\u{61c}', '\u{61c}'),
    ('\u{6dd}', '\u{6dd}'),
    ('\u{70f}', '\u{70f}'),
    ('\u{890}', '\u{891}'),
    ('\u{8e2}', '\u{8e2}'),
    ('\u{115f}', '\u{1160}'),
    ('\u{17b4}', '\u{17b5}'),
    ('\u{180b}', '\u{180f}'),
    ('\u{200b}', '\u{200f}'),
    ('\u{202a}', '\u{202e}'),
    ('\u{2060}', '\u{206f}'),
    ('\u{2800}', '\u{2800}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{fe00}', '\u{fe0f}'),
    ('\u{feff}', '\u{feff}'),
    ('\u{ffa0}', '\u{ffa0}'),
    ('\u{fff0}', '\u{fffb}'),
    ('\u{110bd}', '\u{110bd}'),
    ('\u{110cd}', '\u{110cd}'),
    ('\u{13430}', '\u{1343f}'),
    ('\u{1bca0}', '\u{1bca3}'),
    ('\u{1d173}', '\u{1d17a}'),
    ('\u{e0000}', '\u{e0fff}'),
];

/// A format character, a default-ignorable code point, or the blank braille pattern.
pub fn is_invisible(c: char) -> bool {
    // Every range starts above U+00AC, so ASCII text never reaches the search.
    if c < '\u{ad}' {
        return false;
    }
    // The first range that does not end before `c` is the only one that can hold it.
    let candidate = INVISIBLE.partition_point(|&(_, last)| last < c);
    INVISIBLE.get(candidate).is_some_and(|&(first, _)| first <= c)
}

/// Whether any character of `text` can be seen: one that is not white space, a control character
/// or an invisible one.
pub fn has_visible_character(text: &str) -> bool {
    text.chars()
        .any(|c| !(c.is_whitespace() || c.is_control() || is_invisible(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_merged() {
        for (first, last) in INVISIBLE {
            assert!(first <= last, "{first:?}..{last:?}");
        }
        for pair in INVISIBLE.windows(2) {
            assert!(
                (pair[0].1 as u32) + 1 < pair[1].0 as u32,
                "{:?} and {:?} overlap, touch or are out of order",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn invisible_characters_by_name() {
        let invisible = [
            ('\u{ad}', "SOFT HYPHEN"),
            ('\u{34f}', "COMBINING GRAPHEME JOINER"),
            ('\u{61c}', "ARABIC LETTER MARK"),
            ('\u{115f}', "HANGUL CHOSEONG FILLER"),
            ('\u{1160}', "HANGUL JUNGSEONG FILLER"),
            ('\u{180e}', "MONGOLIAN VOWEL SEPARATOR"),
            ('\u{200b}', "ZERO WIDTH SPACE"),
            ('\u{200c}', "ZERO WIDTH NON-JOINER"),
            ('\u{200d}', "ZERO WIDTH JOINER"),
            ('\u{200e}', "LEFT-TO-RIGHT MARK"),
            ('\u{202e}', "RIGHT-TO-LEFT OVERRIDE"),
            ('\u{2060}', "WORD JOINER"),
            ('\u{2066}', "LEFT-TO-RIGHT ISOLATE"),
            ('\u{2069}', "POP DIRECTIONAL ISOLATE"),
            ('\u{2800}', "BRAILLE PATTERN BLANK"),
            ('\u{3164}', "HANGUL FILLER"),
            ('\u{fe0f}', "VARIATION SELECTOR-16"),
            ('\u{feff}', "ZERO WIDTH NO-BREAK SPACE"),
            ('\u{ffa0}', "HALFWIDTH HANGUL FILLER"),
            ('\u{1d173}', "MUSICAL SYMBOL BEGIN BEAM"),
            ('\u{e0001}', "LANGUAGE TAG"),
            ('\u{e0041}', "TAG LATIN CAPITAL LETTER A"),
            ('\u{e01ef}', "VARIATION SELECTOR-256"),
        ];
        for (c, name) in invisible {
            assert!(is_invisible(c), "{name} U+{:04X}", c as u32);
        }
        let visible = [
            ('a', "LATIN SMALL LETTER A"),
            ('\u{ac}', "NOT SIGN"),
            ('\u{ae}', "REGISTERED SIGN"),
            ('\u{301}', "COMBINING ACUTE ACCENT"),
            ('\u{3131}', "HANGUL LETTER KIYEOK"),
            ('\u{2801}', "BRAILLE PATTERN DOTS-1"),
            ('\u{1f600}', "GRINNING FACE"),
            ('\u{fffd}', "REPLACEMENT CHARACTER"),
            ('\u{e1000}', "beyond the tags and selectors"),
        ];
        for (c, name) in visible {
            assert!(!is_invisible(c), "{name} U+{:04X}", c as u32);
        }
    }

    #[test]
    fn visible_text_needs_one_character_that_shows() {
        for blank in [
            "",
            " ",
            "\u{200b}",
            "\u{3164}\u{3164}",
            "\u{2800}",
            " \u{feff}\t\u{200d} ",
        ] {
            assert!(!has_visible_character(blank), "{blank:?}");
        }
        for shown in ["a", "\u{200b}a", "👩\u{200d}💻", "\u{2764}\u{fe0f}", "\u{202e}abc"] {
            assert!(has_visible_character(shown), "{shown:?}");
        }
    }
}
