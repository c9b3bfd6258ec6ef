//! The GPT-2 byte ↔ unicode mapping of byte-level BPE.
//!
//! Byte-level BPE vocabularies store every token as a string of *printable* characters, one
//! character per byte: the 188 bytes that are printable Latin-1 (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`)
//! stand for themselves, and the remaining 68 bytes (controls, space, DEL, NBSP, soft hyphen, …)
//! are given the code points U+0100, U+0101, … in increasing byte order. So the space byte 0x20
//! is written `Ġ` (U+0120) and the newline 0x0A is `Ċ` (U+010A). This is the table of
//! `bytes_to_unicode` in OpenAI's GPT-2 `encoder.py` (Radford et al., 2019).

/// The highest code point the mapping produces: 0x100 + 68 − 1.
const MAX_MAPPED: u32 = 0x143;

/// True when byte `b` is printable Latin-1 and therefore stands for itself.
const fn is_self_mapped(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// Both directions of the byte ↔ character table.
#[derive(Clone, Debug)]
pub struct ByteMap {
    /// `to_char[b]`: the character that stands for byte `b`.
    to_char: [char; 256],
    /// `to_byte[c]` for code points `c ≤ MAX_MAPPED`: the byte that `c` stands for, if any.
    to_byte: [Option<u8>; MAX_MAPPED as usize + 1],
}

impl ByteMap {
    /// Builds the table.
    pub fn new() -> Self {
        let mut to_char = ['\0'; 256];
        let mut to_byte = [None; MAX_MAPPED as usize + 1];
        let mut next_extra = 0x100u32;
        for b in 0..=255u8 {
            let cp = if is_self_mapped(b) {
                u32::from(b)
            } else {
                let cp = next_extra;
                next_extra += 1;
                cp
            };
            // Every value is ≤ 0x143, a valid scalar value.
            let c = char::from_u32(cp).unwrap_or('\0');
            to_char[usize::from(b)] = c;
            to_byte[cp as usize] = Some(b);
        }
        debug_assert_eq!(next_extra, MAX_MAPPED + 1);
        ByteMap { to_char, to_byte }
    }

    /// The character that stands for byte `b`.
    #[inline]
    pub fn char_of(&self, b: u8) -> char {
        self.to_char[usize::from(b)]
    }

    /// The byte that character `c` stands for, or `None` when `c` is not in the table.
    #[inline]
    pub fn byte_of(&self, c: char) -> Option<u8> {
        self.to_byte.get(c as usize).copied().flatten()
    }

    /// Decodes a vocabulary string (one mapped character per byte) into its bytes; `None` when a
    /// character is outside the table.
    pub fn decode_str(&self, s: &str) -> Option<Vec<u8>> {
        s.chars().map(|c| self.byte_of(c)).collect()
    }

    /// Encodes raw bytes as the mapped string.
    pub fn encode_bytes(&self, bytes: &[u8]) -> String {
        bytes.iter().map(|&b| self.char_of(b)).collect()
    }
}

impl Default for ByteMap {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_bytes_map_to_themselves() {
        let m = ByteMap::new();
        assert_eq!(m.char_of(b'A'), 'A');
        assert_eq!(m.char_of(b'~'), '~');
        assert_eq!(m.char_of(0xE9), 'é');
        assert_eq!(m.char_of(0xFF), 'ÿ');
    }

    #[test]
    fn non_printable_bytes_follow_gpt2_order() {
        // Hand-counted from the rule: bytes 0x00..=0x20 are the first 33 non-printable bytes,
        // so 0x00 → U+0100, 0x0A → U+010A, 0x20 → U+0120 ('Ġ'); then 0x7F..=0xA0 follow
        // (0x7F → U+0121 'ġ'), and 0xAD (soft hyphen) is the last one → U+0143 'Ń'.
        let m = ByteMap::new();
        assert_eq!(m.char_of(0x00), '\u{100}');
        assert_eq!(m.char_of(b'\n'), 'Ċ');
        assert_eq!(m.char_of(b' '), 'Ġ');
        assert_eq!(m.char_of(0x7F), 'ġ');
        assert_eq!(m.char_of(0xA0), '\u{142}');
        assert_eq!(m.char_of(0xAD), 'Ń');
    }

    #[test]
    fn mapping_is_a_bijection() {
        let m = ByteMap::new();
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            let c = m.char_of(b);
            assert!(seen.insert(c), "byte {b:#x} maps to a duplicate {c:?}");
            assert_eq!(m.byte_of(c), Some(b));
        }
        assert_eq!(m.byte_of('Ą'), Some(0x04)); // U+0104
        assert_eq!(m.byte_of('\u{144}'), None);
        assert_eq!(m.byte_of(' '), None);
        assert_eq!(m.byte_of('日'), None);
    }

    #[test]
    fn round_trips_strings() {
        let m = ByteMap::new();
        let text = "naïve 日本\n\t";
        let mapped = m.encode_bytes(text.as_bytes());
        assert!(!mapped.contains(' '));
        assert_eq!(m.decode_str(&mapped).unwrap(), text.as_bytes());
        assert_eq!(m.decode_str("Ġworld").unwrap(), b" world");
    }
}
