//! Pre-tokenization: cutting raw text into the pieces that BPE merges never cross.
//!
//! GPT-2 cuts text with the regular expression
//!
//! ```text
//! 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//! ```
//!
//! (leftmost alternative wins at each position). SmolLM's vocabulary (`tokenizer.ggml.pre =
//! smollm`, the StarCoder family) first isolates every number character — the expression
//! `\p{N}` — and then applies the GPT-2 expression separately to each of the resulting
//! segments, so `2024` becomes four pieces and a space before a digit is never glued to it.
//! This is how llama.cpp's `llama-vocab.cpp` lists the two expressions for the `smollm`
//! pre-tokenizer type; the text between matches of the first expression is kept as its own
//! segment.
//!
//! The expressions are matched by hand below rather than with a regex engine: the negative
//! look-ahead `(?!\S)` is not supported by linear-time engines, and the hand-written matcher
//! needs only the Unicode general category of each character.
//!
//! Character classes: `\p{L}` is general category L (Lu, Ll, Lt, Lm, Lo), `\p{N}` is N (Nd, Nl,
//! No), `\s` is the Unicode `White_Space` property (what [`char::is_whitespace`] tests).

use unicode_general_category::{get_general_category, GeneralCategory as Gc};

/// How the text is cut before BPE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    /// The GPT-2 expression alone (`tokenizer.ggml.pre = gpt2`).
    Gpt2,
    /// Every `\p{N}` character isolated first, then the GPT-2 expression on each segment
    /// (`smollm`, and the `starcoder` family that shares its expressions).
    Smollm,
}

impl PreTokenizer {
    /// The pre-tokenizer named by a GGUF `tokenizer.ggml.pre` value, if it is one of ours.
    ///
    /// The names listed with `Smollm` use the same two expressions in llama.cpp.
    pub fn from_gguf_name(name: &str) -> Option<Self> {
        match name {
            "gpt2" | "gpt-2" => Some(PreTokenizer::Gpt2),
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" => {
                Some(PreTokenizer::Smollm)
            }
            _ => None,
        }
    }

    /// Cuts `text` into pieces, in order; their concatenation is `text`. No piece is empty.
    pub fn split<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let chars: Vec<(usize, char, Class)> = text
            .char_indices()
            .map(|(i, c)| (i, c, Class::of(c)))
            .collect();
        let mut out = Vec::with_capacity(chars.len() / 3 + 1);
        let mut emit = |from: usize, to: usize| {
            let start = chars[from].0;
            let end = chars.get(to).map_or(text.len(), |c| c.0);
            out.push(&text[start..end]);
        };
        match self {
            PreTokenizer::Gpt2 => gpt2_segment(&chars, 0, chars.len(), &mut emit),
            PreTokenizer::Smollm => {
                // Segments: each number character alone, and the maximal runs between them.
                let mut start = 0;
                for (i, &(_, _, class)) in chars.iter().enumerate() {
                    if class == Class::Number {
                        if start < i {
                            gpt2_segment(&chars, start, i, &mut emit);
                        }
                        gpt2_segment(&chars, i, i + 1, &mut emit);
                        start = i + 1;
                    }
                }
                if start < chars.len() {
                    gpt2_segment(&chars, start, chars.len(), &mut emit);
                }
            }
        }
        out
    }
}

/// The classes the GPT-2 expression distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// `\p{L}`.
    Letter,
    /// `\p{N}`.
    Number,
    /// `\s`.
    Space,
    /// Everything else (`[^\s\p{L}\p{N}]`): punctuation, symbols, marks, controls, unassigned.
    Other,
}

impl Class {
    /// The class of one character.
    pub fn of(c: char) -> Class {
        if c.is_ascii() {
            return if c.is_ascii_alphabetic() {
                Class::Letter
            } else if c.is_ascii_digit() {
                Class::Number
            } else if c.is_ascii_whitespace() || c == '\u{0B}' {
                // ASCII White_Space: TAB, LF, VT, FF, CR, SPACE.
                Class::Space
            } else {
                Class::Other
            };
        }
        if c.is_whitespace() {
            return Class::Space;
        }
        match get_general_category(c) {
            Gc::UppercaseLetter
            | Gc::LowercaseLetter
            | Gc::TitlecaseLetter
            | Gc::ModifierLetter
            | Gc::OtherLetter => Class::Letter,
            Gc::DecimalNumber | Gc::LetterNumber | Gc::OtherNumber => Class::Number,
            _ => Class::Other,
        }
    }
}

/// Runs the GPT-2 expression over the characters `chars[start..end]` (one segment: nothing
/// outside it is visible, so look-ahead stops at `end`), calling `emit(from, to)` with the
/// character range of every match.
fn gpt2_segment(
    chars: &[(usize, char, Class)],
    start: usize,
    end: usize,
    emit: &mut impl FnMut(usize, usize),
) {
    // Class at `i`, or `None` past the segment.
    let class_at = |i: usize| (i < end).then(|| chars[i].2);
    let char_at = |i: usize| (i < end).then(|| chars[i].1);
    let mut pos = start;
    while pos < end {
        let c = chars[pos].1;
        // 's|'t|'re|'ve|'m|'ll|'d — case-sensitive, as in GPT-2.
        if c == '\'' {
            match (char_at(pos + 1), char_at(pos + 2)) {
                (Some('s' | 't' | 'm' | 'd'), _) => {
                    emit(pos, pos + 2);
                    pos += 2;
                    continue;
                }
                (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => {
                    emit(pos, pos + 3);
                    pos += 3;
                    continue;
                }
                _ => {}
            }
        }
        // ` ?X+` for X in {\p{L}, \p{N}, [^\s\p{L}\p{N}]}: an optional single space, then a run.
        let lead = usize::from(c == ' ');
        let run_class = if c == ' ' {
            class_at(pos + 1)
        } else {
            Some(chars[pos].2)
        };
        if let Some(class @ (Class::Letter | Class::Number | Class::Other)) = run_class {
            let mut to = pos + lead;
            while class_at(to) == Some(class) {
                to += 1;
            }
            emit(pos, to);
            pos = to;
            continue;
        }
        // \s+(?!\S) | \s+ : a whitespace run; when a non-space follows inside the segment, the
        // run gives up its last character (which then starts the next match).
        let mut n = 0;
        while class_at(pos + n) == Some(Class::Space) {
            n += 1;
        }
        let to = if n > 1 && pos + n < end {
            pos + n - 1
        } else if n > 0 {
            pos + n
        } else {
            // Unreachable with the four classes; kept so the loop always advances.
            pos + 1
        };
        emit(pos, to);
        pos = to;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm(text: &str) -> Vec<&str> {
        PreTokenizer::Smollm.split(text)
    }

    #[test]
    fn classes_follow_general_categories() {
        assert_eq!(Class::of('a'), Class::Letter);
        assert_eq!(Class::of('ï'), Class::Letter);
        assert_eq!(Class::of('日'), Class::Letter); // Lo
        assert_eq!(Class::of('ʰ'), Class::Letter); // Lm
        assert_eq!(Class::of('٣'), Class::Number); // Arabic-Indic digit, Nd
        assert_eq!(Class::of('Ⅻ'), Class::Number); // Nl
        assert_eq!(Class::of('½'), Class::Number); // No
        assert_eq!(Class::of('\u{301}'), Class::Other); // combining acute, Mn
        assert_eq!(Class::of('—'), Class::Other);
        assert_eq!(Class::of('🙂'), Class::Other);
        assert_eq!(Class::of('\u{A0}'), Class::Space);
        assert_eq!(Class::of('\u{3000}'), Class::Space);
        assert_eq!(Class::of('\u{0B}'), Class::Space);
        assert_eq!(Class::of('\u{85}'), Class::Space);
        assert_eq!(Class::of('\u{200B}'), Class::Other); // zero-width space is not White_Space
    }

    #[test]
    fn words_take_one_leading_space() {
        assert_eq!(smollm("Hello world"), ["Hello", " world"]);
        assert_eq!(smollm(" Hello"), [" Hello"]);
        assert_eq!(smollm("naïve café"), ["naïve", " café"]);
    }

    #[test]
    fn digits_split_one_per_piece() {
        assert_eq!(smollm("2024"), ["2", "0", "2", "4"]);
        assert_eq!(smollm("abc123def"), ["abc", "1", "2", "3", "def"]);
        // The space before a digit is its own segment's content, never glued to the digit.
        assert_eq!(smollm("n < 2:"), ["n", " <", " ", "2", ":"]);
        assert_eq!(smollm("x٣½"), ["x", "٣", "½"]);
        // Plain GPT-2 keeps number runs together with their space.
        assert_eq!(PreTokenizer::Gpt2.split("n 2024"), ["n", " 2024"]);
    }

    #[test]
    fn contractions_are_lowercase_only() {
        assert_eq!(smollm("How's it"), ["How", "'s", " it"]);
        assert_eq!(
            smollm("we're we'll I'd"),
            ["we", "'re", " we", "'ll", " I", "'d"]
        );
        assert_eq!(smollm("I'M"), ["I", "'", "M"]);
        // A quote directly before `s` is read as the contraction, as in GPT-2.
        assert_eq!(smollm("'single'"), ["'s", "ingle", "'"]);
        assert_eq!(smollm(" 'single'"), [" '", "single", "'"]);
        assert_eq!(smollm("'t"), ["'t"]);
        assert_eq!(smollm("'r"), ["'", "r"]);
    }

    #[test]
    fn punctuation_runs_take_one_leading_space() {
        assert_eq!(smollm("fine—thanks..."), ["fine", "—", "thanks", "..."]);
        assert_eq!(smollm("a (b) [c]"), ["a", " (", "b", ")", " [", "c", "]"]);
        assert_eq!(smollm("hi 🙂"), ["hi", " 🙂"]);
    }

    #[test]
    fn whitespace_runs_leave_last_space_to_next_word() {
        assert_eq!(smollm("   leading"), ["  ", " leading"]);
        assert_eq!(smollm("trailing   "), ["trailing", "   "]);
        assert_eq!(smollm("a\n\nb"), ["a", "\n", "\n", "b"]);
        assert_eq!(smollm("\n\n\n"), ["\n\n\n"]);
        assert_eq!(smollm("a\n    if"), ["a", "\n   ", " if"]);
        assert_eq!(smollm("\r\nw"), ["\r", "\n", "w"]);
        assert_eq!(smollm("\tx"), ["\t", "x"]);
        // Only U+0020 glues to the next word; other White_Space characters stand alone.
        assert_eq!(smollm("a\u{A0}\u{A0}b"), ["a", "\u{A0}", "\u{A0}", "b"]);
        assert_eq!(smollm("a \u{3000}b"), ["a", " ", "\u{3000}", "b"]);
        // A run followed by a digit ends at the segment boundary and keeps all its spaces.
        assert_eq!(smollm("x   1"), ["x", "   ", "1"]);
    }

    #[test]
    fn pieces_cover_the_text() {
        let text = "def f(n):\n\treturn n-1 # ok\u{A0}x 日本語 ½ 'll\r\n";
        let pieces = smollm(text);
        assert_eq!(pieces.concat(), text);
        assert!(pieces.iter().all(|p| !p.is_empty()));
        assert!(smollm("").is_empty());
    }
}
