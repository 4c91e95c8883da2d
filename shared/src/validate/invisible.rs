//! Characters a reader cannot see, refused in every human-readable field (in the spirit of
//! UTS #39, Unicode Security Mechanisms): they let two names that look the same differ, or make
//! a name display differently from what it says (`Acme\u{202E}gnp.exe`), and the edge hands names
//! to partners verbatim.
//!
//! Refused:
//! * format characters (`Cf`: every bidirectional control — embeddings, overrides, isolates,
//!   marks —, zero-width space, non-joiner and joiner, word joiner, BOM, invisible operators,
//!   interlinear annotations, tags, …), private-use (`Co`) and unassigned (`Cn`) code points,
//!   the line and paragraph separators (`Zl`, `Zp`);
//! * the other default-ignorable code points, which render as nothing although they are
//!   marks or letters: variation selectors, the combining grapheme joiner, the Hangul fillers,
//!   the Khmer inherent vowels, the Mongolian free variation selectors.
//!
//! Allowed, because emoji need them: a zero-width joiner between two emoji (`👩‍💻`), and a
//! variation selector 15 or 16 right after an emoji (`❤️`). An ASCII character (the digits, `#`
//! and `*` are emoji too) never counts as one, so `1\u{200D}2` is refused. Control characters are
//! the caller's rule ([`super::optional_text`]).

use unicode_properties::{GeneralCategory, UnicodeEmoji, UnicodeGeneralCategory};

/// Default-ignorable code points that are not `Cf`/`Cn` (those are refused by category):
/// Unicode's DerivedCoreProperties, Default_Ignorable_Code_Point, of categories Mn and Lo.
const IGNORABLE_MARKS_AND_LETTERS: [(char, char); 8] = [
    ('\u{034F}', '\u{034F}'),   // COMBINING GRAPHEME JOINER
    ('\u{115F}', '\u{1160}'),   // HANGUL CHOSEONG FILLER, JUNGSEONG FILLER
    ('\u{17B4}', '\u{17B5}'),   // KHMER VOWEL INHERENT AQ, AA
    ('\u{180B}', '\u{180F}'),   // MONGOLIAN FREE VARIATION SELECTORS, VOWEL SEPARATOR
    ('\u{3164}', '\u{3164}'),   // HANGUL FILLER
    ('\u{FE00}', '\u{FE0F}'),   // VARIATION SELECTOR-1..16
    ('\u{FFA0}', '\u{FFA0}'),   // HALFWIDTH HANGUL FILLER
    ('\u{E0100}', '\u{E01EF}'), // VARIATION SELECTOR-17..256
];

const ZWJ: char = '\u{200D}';

fn is_emoji(c: Option<char>) -> bool {
    c.is_some_and(|c| !c.is_ascii() && c.is_emoji_char())
}

fn refused_alone(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Format
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    ) || IGNORABLE_MARKS_AND_LETTERS
        .iter()
        .any(|(from, to)| (*from..=*to).contains(&c))
}

/// The first refused character of `text` and its position (in characters), if any.
pub fn first_invisible(text: &str) -> Option<(usize, char)> {
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !refused_alone(c) {
            continue;
        }
        let before = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
        let after = chars.get(i + 1).copied();
        let emoji_joiner =
            c == ZWJ && (is_emoji(before) || before == Some('\u{FE0F}')) && is_emoji(after);
        let emoji_presentation = matches!(c, '\u{FE0E}' | '\u{FE0F}') && is_emoji(before);
        if !(emoji_joiner || emoji_presentation) {
            return Some((i, c));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_text_passes() {
        for ok in [
            "Acme Support Bot",
            "Zürich Ops — Tier 2",
            "サポート",
            "مساعد الدعم",
            "עוזר",
            "Café\u{0301}", // a combining accent is visible
            "Bot 🤖",
            "Acme ❤\u{FE0F} Bot",
            "dev 👩\u{200D}💻",
            "love ❤\u{FE0F}\u{200D}🔥",
            "skin 👩🏽\u{200D}💻",
            "non\u{00A0}breaking",
            "Ideographic\u{3000}space",
        ] {
            assert_eq!(first_invisible(ok), None, "{ok:?}");
        }
    }

    #[test]
    fn invisible_and_bidi_characters_are_found() {
        let cases: [(&str, usize, char); 20] = [
            ("Acme\u{202E}gnp.exe", 4, '\u{202E}'),
            ("\u{202A}x", 0, '\u{202A}'),
            ("x\u{202B}", 1, '\u{202B}'),
            ("x\u{202C}", 1, '\u{202C}'),
            ("x\u{202D}", 1, '\u{202D}'),
            ("x\u{2066}y\u{2069}", 1, '\u{2066}'),
            ("x\u{2067}", 1, '\u{2067}'),
            ("x\u{2068}", 1, '\u{2068}'),
            ("x\u{200E}", 1, '\u{200E}'),
            ("x\u{200F}", 1, '\u{200F}'),
            ("x\u{061C}", 1, '\u{061C}'),
            ("pay\u{200B}pal", 3, '\u{200B}'),
            ("pay\u{200C}pal", 3, '\u{200C}'),
            ("pay\u{200D}pal", 3, '\u{200D}'),
            ("pay\u{2060}pal", 3, '\u{2060}'),
            ("\u{FEFF}Acme", 0, '\u{FEFF}'),
            ("Acme\u{FE0F}", 4, '\u{FE0F}'),
            ("Acme\u{00AD}", 4, '\u{00AD}'),
            ("Ac\u{034F}me", 2, '\u{034F}'),
            ("\u{3164}", 0, '\u{3164}'),
        ];
        for (text, at, c) in cases {
            assert_eq!(first_invisible(text), Some((at, c)), "{text:?}");
        }
        for (text, c) in [
            ("1\u{200D}2", '\u{200D}'),
            ("🤖\u{200D}", '\u{200D}'),
            ("\u{200D}🤖", '\u{200D}'),
            ("a\u{E0041}", '\u{E0041}'),
            ("a\u{E0100}", '\u{E0100}'),
            ("private \u{E000}", '\u{E000}'),
            ("line\u{2028}break", '\u{2028}'),
            ("para\u{2029}", '\u{2029}'),
            ("note\u{FFF9}x\u{FFFB}", '\u{FFF9}'),
            ("unassigned \u{0378}", '\u{0378}'),
            ("filler\u{FFA0}", '\u{FFA0}'),
            ("khmer\u{17B4}", '\u{17B4}'),
            ("mongolian\u{180E}", '\u{180E}'),
            ("1\u{FE0F}", '\u{FE0F}'),
        ] {
            assert_eq!(first_invisible(text).map(|(_, c)| c), Some(c), "{text:?}");
        }
    }

    #[test]
    fn every_bidi_control_is_refused() {
        // Bidi_Control (PropList.txt): ALM, LRM, RLM, the embeddings and overrides, the isolates.
        let bidi_controls = ['\u{061C}', '\u{200E}', '\u{200F}']
            .into_iter()
            .chain('\u{202A}'..='\u{202E}')
            .chain('\u{2066}'..='\u{2069}');
        for c in bidi_controls {
            assert!(refused_alone(c), "U+{:04X}", c as u32);
        }
    }
}
