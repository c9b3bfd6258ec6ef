//! Typed access to a GGUF file's metadata.
//!
//! Every getter's error names the key: [`Error::MissingKey`] when it is absent,
//! [`Error::KeyType`] when it holds another type (or an integer that does not fit).
//!
//! Integer getters accept a value stored as *any* GGUF integer type whose value fits the
//! requested type: writers differ (one stores `llama.block_count` as u32, another as u64 or
//! i32), and the value is what matters. Float getters accept f32 and f64 (narrowing f64 to
//! f32 rounds to nearest). Nothing converts between integers, floats, bools and strings.

use super::value::{Array, Value};
use super::GgufFile;
use nanotensor_core::error::{Error, Result};

const OP: &str = "gguf metadata";

/// Converts an integer metadata value to `T`, or explains why not.
pub(crate) fn integer<T: TryFrom<i128>>(
    op: &'static str,
    key: &str,
    value: &Value,
    expected: &'static str,
) -> Result<T> {
    let mistyped = |found: String| Error::KeyType {
        op,
        key: key.to_string(),
        expected,
        found,
    };
    let v = value
        .as_integer()
        .ok_or_else(|| mistyped(value.type_description()))?;
    T::try_from(v).map_err(|_| mistyped(format!("{} {v}, out of range", value.type_description())))
}

impl GgufFile {
    /// The metadata pairs in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.key_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// The value under `key`, or [`Error::MissingKey`].
    pub fn require(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| Error::MissingKey {
            op: OP,
            key: key.to_string(),
        })
    }

    fn mistyped(&self, key: &str, expected: &'static str, value: &Value) -> Error {
        Error::KeyType {
            op: OP,
            key: key.to_string(),
            expected,
            found: value.type_description(),
        }
    }

    /// An integer key as `u32` (any stored integer type whose value fits).
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        integer(OP, key, self.require(key)?, "an integer fitting u32")
    }

    /// An integer key as `u64` (any stored integer type whose value fits).
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        integer(OP, key, self.require(key)?, "an integer fitting u64")
    }

    /// An integer key as `i64` (any stored integer type whose value fits).
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        integer(OP, key, self.require(key)?, "an integer fitting i64")
    }

    /// An integer key as `usize` (any stored integer type whose value fits), for sizes.
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        integer(OP, key, self.require(key)?, "an integer fitting usize")
    }

    /// A float key as `f32` (stored as f32, or f64 rounded to nearest).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        match *self.require(key)? {
            Value::F32(v) => Ok(v),
            Value::F64(v) => Ok(v as f32),
            ref v => Err(self.mistyped(key, "f32", v)),
        }
    }

    /// A bool key.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match *self.require(key)? {
            Value::Bool(v) => Ok(v),
            ref v => Err(self.mistyped(key, "bool", v)),
        }
    }

    /// A string key.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| self.mistyped(key, "string", v))
    }

    /// An array-of-strings key (a vocabulary, a merge list).
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        match self.require(key)? {
            Value::Array(Array::String(v)) => Ok(v.iter().map(String::as_str).collect()),
            v => Err(self.mistyped(key, "array of string", v)),
        }
    }

    /// An array-of-integers key as `i32` (elements of any integer type whose values fit).
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        let v = self.require(key)?;
        match v {
            Value::Array(Array::I32(items)) => Ok(items.clone()),
            Value::Array(a) => {
                let ints = a
                    .integers()
                    .ok_or_else(|| self.mistyped(key, "array of integers fitting i32", v))?;
                ints.into_iter()
                    .map(i32::try_from)
                    .collect::<std::result::Result<Vec<i32>, _>>()
                    .map_err(|_| Error::KeyType {
                        op: OP,
                        key: key.to_string(),
                        expected: "array of integers fitting i32",
                        found: format!("{} with an element out of range", v.type_description()),
                    })
            }
            _ => Err(self.mistyped(key, "array of integers fitting i32", v)),
        }
    }

    /// An array-of-floats key as `f32` (f32 elements, or f64 rounded to nearest).
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        match self.require(key)? {
            Value::Array(Array::F32(items)) => Ok(items.clone()),
            Value::Array(Array::F64(items)) => Ok(items.iter().map(|&x| x as f32).collect()),
            v => Err(self.mistyped(key, "array of f32", v)),
        }
    }

    /// `general.architecture` (e.g. `"llama"`), the prefix of the model's hyperparameter keys.
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }
}
