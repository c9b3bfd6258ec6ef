//! Metadata values of a GGUF file: thirteen scalar and string types, and (possibly nested) arrays.
//!
//! Arrays are stored typed (`Vec<u32>`, `Vec<String>`, …) rather than as `Vec<Value>`: a vocabulary
//! of 49,152 token types then costs 4 bytes per entry, and the memory an array can take stays a
//! small constant times the bytes it occupied in the file.

use std::fmt;

/// The `gguf_metadata_value_type` tag that precedes every value in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// Tag 0.
    U8,
    /// Tag 1.
    I8,
    /// Tag 2.
    U16,
    /// Tag 3.
    I16,
    /// Tag 4.
    U32,
    /// Tag 5.
    I32,
    /// Tag 6.
    F32,
    /// Tag 7: one byte, 0 or 1.
    Bool,
    /// Tag 8: u64 byte length, then UTF-8 bytes (no terminator).
    String,
    /// Tag 9: u32 element tag, u64 element count, then the elements.
    Array,
    /// Tag 10.
    U64,
    /// Tag 11.
    I64,
    /// Tag 12.
    F64,
}

impl ValueType {
    /// The type for a tag read from the file, or `None` for an unknown tag.
    pub fn from_tag(tag: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match tag {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Lower-case name used in messages (`"u32"`, `"string"`).
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }

    /// The fewest bytes one value of this type can occupy in the file: its fixed size, the
    /// 8-byte length of a string, or the 12-byte header of an array. Used to bound counts by the
    /// bytes that remain before anything is allocated.
    pub fn min_encoded_size(self) -> usize {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }
}

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `u8`.
    U8(u8),
    /// `i8`.
    I8(i8),
    /// `u16`.
    U16(u16),
    /// `i16`.
    I16(i16),
    /// `u32`.
    U32(u32),
    /// `i32`.
    I32(i32),
    /// `u64`.
    U64(u64),
    /// `i64`.
    I64(i64),
    /// `f32`.
    F32(f32),
    /// `f64`.
    F64(f64),
    /// `bool`.
    Bool(bool),
    /// A UTF-8 string.
    String(String),
    /// A typed array.
    Array(Array),
}

/// A typed metadata array; `Array` elements are themselves arrays (each with its own type).
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    /// Array of `u8`.
    U8(Vec<u8>),
    /// Array of `i8`.
    I8(Vec<i8>),
    /// Array of `u16`.
    U16(Vec<u16>),
    /// Array of `i16`.
    I16(Vec<i16>),
    /// Array of `u32`.
    U32(Vec<u32>),
    /// Array of `i32`.
    I32(Vec<i32>),
    /// Array of `u64`.
    U64(Vec<u64>),
    /// Array of `i64`.
    I64(Vec<i64>),
    /// Array of `f32`.
    F32(Vec<f32>),
    /// Array of `f64`.
    F64(Vec<f64>),
    /// Array of `bool`.
    Bool(Vec<bool>),
    /// Array of strings.
    String(Vec<String>),
    /// Array of arrays.
    Array(Vec<Array>),
}

impl Value {
    /// The value's type tag.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F32(_) => ValueType::F32,
            Value::F64(_) => ValueType::F64,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
        }
    }

    /// The value as a signed 128-bit integer when it is any integer type (every GGUF integer
    /// fits), so callers can range-check it into the width they need.
    pub fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The string, when the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The array, when the value is one.
    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A short description of the type for error messages: `u32`, `string`, `array of string`.
    pub fn type_description(&self) -> String {
        match self {
            Value::Array(a) => format!("array of {} ({} elements)", a.item_type().name(), a.len()),
            v => v.value_type().name().to_string(),
        }
    }
}

impl Array {
    /// The element type tag.
    pub fn item_type(&self) -> ValueType {
        match self {
            Array::U8(_) => ValueType::U8,
            Array::I8(_) => ValueType::I8,
            Array::U16(_) => ValueType::U16,
            Array::I16(_) => ValueType::I16,
            Array::U32(_) => ValueType::U32,
            Array::I32(_) => ValueType::I32,
            Array::U64(_) => ValueType::U64,
            Array::I64(_) => ValueType::I64,
            Array::F32(_) => ValueType::F32,
            Array::F64(_) => ValueType::F64,
            Array::Bool(_) => ValueType::Bool,
            Array::String(_) => ValueType::String,
            Array::Array(_) => ValueType::Array,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::F64(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Array(v) => v.len(),
        }
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as `i128` when the array holds integers of any type.
    pub fn integers(&self) -> Option<Vec<i128>> {
        fn widen<T: Copy + Into<i128>>(v: &[T]) -> Vec<i128> {
            v.iter().map(|&x| x.into()).collect()
        }
        Some(match self {
            Array::U8(v) => widen(v),
            Array::I8(v) => widen(v),
            Array::U16(v) => widen(v),
            Array::I16(v) => widen(v),
            Array::U32(v) => widen(v),
            Array::I32(v) => widen(v),
            Array::U64(v) => widen(v),
            Array::I64(v) => widen(v),
            _ => return None,
        })
    }
}

/// Prints scalars plainly, strings quoted, and arrays abbreviated to their first elements
/// (`[string; 49152] ["<|endoftext|>", "<|im_start|>", …]`), so a vocabulary fits on a line.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::U8(v) => write!(f, "{v}"),
            Value::I8(v) => write!(f, "{v}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::I16(v) => write!(f, "{v}"),
            Value::U32(v) => write!(f, "{v}"),
            Value::I32(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Array(a) => write!(f, "{a}"),
        }
    }
}

impl fmt::Display for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 3;
        fn items<T: fmt::Debug>(f: &mut fmt::Formatter<'_>, v: &[T]) -> fmt::Result {
            let head: Vec<String> = v.iter().take(SHOWN).map(|x| format!("{x:?}")).collect();
            let more = if v.len() > SHOWN { ", …" } else { "" };
            write!(f, " [{}{more}]", head.join(", "))
        }
        write!(f, "[{}; {}]", self.item_type().name(), self.len())?;
        match self {
            Array::U8(v) => items(f, v),
            Array::I8(v) => items(f, v),
            Array::U16(v) => items(f, v),
            Array::I16(v) => items(f, v),
            Array::U32(v) => items(f, v),
            Array::I32(v) => items(f, v),
            Array::U64(v) => items(f, v),
            Array::I64(v) => items(f, v),
            Array::F32(v) => items(f, v),
            Array::F64(v) => items(f, v),
            Array::Bool(v) => items(f, v),
            Array::String(v) => items(f, v),
            Array::Array(_) => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // tests: arithmetic on constants
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        for tag in 0..13 {
            let t = ValueType::from_tag(tag).unwrap();
            assert!(t.min_encoded_size() >= 1);
        }
        assert_eq!(ValueType::from_tag(13), None);
        assert_eq!(ValueType::from_tag(9), Some(ValueType::Array));
    }

    #[test]
    fn integers_widen_exactly() {
        assert_eq!(Value::U64(u64::MAX).as_integer(), Some(u64::MAX as i128));
        assert_eq!(Value::I8(-5).as_integer(), Some(-5));
        assert_eq!(Value::F32(1.0).as_integer(), None);
        assert_eq!(Array::I16(vec![-1, 2]).integers(), Some(vec![-1i128, 2]));
    }

    #[test]
    fn display_abbreviates_arrays() {
        let v = Value::Array(Array::String(vec![
            "a".into(),
            "b".into(),
            "c".into(),
            "d".into(),
        ]));
        assert_eq!(v.to_string(), r#"[string; 4] ["a", "b", "c", …]"#);
        assert_eq!(Value::String("x".into()).to_string(), "\"x\"");
        assert_eq!(
            Value::Array(Array::U32(vec![])).type_description(),
            "array of u32 (0 elements)"
        );
    }
}
