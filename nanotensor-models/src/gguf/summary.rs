//! A printable description of a GGUF model: what `nanotensor info` shows.
//!
//! [`GgufFile::summary`] gathers the architecture, its hyperparameters (the `{arch}.*` keys),
//! the remaining metadata (arrays abbreviated), a per-tensor table and per-type totals;
//! `Display` renders it as plain text. The fields are public so a caller can print its own way
//! (e.g. as JSON).

use std::fmt;

use super::types::GgmlType;
use super::GgufFile;
use nanotensor_core::error::human_bytes;

/// One row of the tensor table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSummary {
    /// Tensor name.
    pub name: String,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Number of values.
    pub n_elements: u64,
    /// Stored bytes.
    pub n_bytes: u64,
}

/// Totals for one element type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeSummary {
    /// Element type.
    pub ggml_type: GgmlType,
    /// Number of tensors of this type.
    pub n_tensors: usize,
    /// Values over those tensors.
    pub n_elements: u64,
    /// Stored bytes over those tensors.
    pub n_bytes: u64,
}

/// Description of a GGUF model file.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSummary {
    /// Path the file was opened from, if any.
    pub path: Option<String>,
    /// GGUF version.
    pub version: u32,
    /// File size in bytes.
    pub file_bytes: u64,
    /// `general.architecture`, if present.
    pub architecture: Option<String>,
    /// `general.name`, if present.
    pub name: Option<String>,
    /// Data alignment.
    pub alignment: usize,
    /// `{architecture}.*` keys with their rendered values, in file order.
    pub hyperparameters: Vec<(String, String)>,
    /// Every other metadata key, rendered (arrays abbreviated to type, length and first items).
    pub other_metadata: Vec<(String, String)>,
    /// All tensors in file order.
    pub tensors: Vec<TensorSummary>,
    /// Totals per element type, ordered by type id.
    pub by_type: Vec<TypeSummary>,
    /// Total values over all tensors: the parameter count.
    pub n_params: u64,
    /// Total tensor bytes.
    pub tensor_bytes: u64,
}

impl GgufFile {
    /// Gathers a [`ModelSummary`] of this file.
    pub fn summary(&self) -> ModelSummary {
        let architecture = self
            .get_str("general.architecture")
            .ok()
            .map(str::to_string);
        let prefix = architecture.as_deref().map(|a| format!("{a}."));
        let (hyperparameters, other_metadata) = self
            .metadata()
            .iter()
            .map(|(k, v)| (k.clone(), abbreviate(v.to_string(), MAX_VALUE_CHARS)))
            .partition(|(k, _)| prefix.as_deref().is_some_and(|p| k.starts_with(p)));
        let tensors: Vec<TensorSummary> = self
            .tensors()
            .iter()
            .map(|t| TensorSummary {
                name: t.name.clone(),
                shape: t.shape.clone(),
                ggml_type: t.ggml_type,
                n_elements: t.n_elements() as u64,
                n_bytes: t.n_bytes as u64,
            })
            .collect();
        let mut by_type: Vec<TypeSummary> = Vec::new();
        for t in &tensors {
            match by_type.iter_mut().find(|s| s.ggml_type == t.ggml_type) {
                // Per-type sums are parts of the totals the reader checked (and the tensor count
                // of a vector's length), so saturation never engages.
                Some(s) => {
                    s.n_tensors = s.n_tensors.saturating_add(1);
                    s.n_elements = s.n_elements.saturating_add(t.n_elements);
                    s.n_bytes = s.n_bytes.saturating_add(t.n_bytes);
                }
                None => by_type.push(TypeSummary {
                    ggml_type: t.ggml_type,
                    n_tensors: 1,
                    n_elements: t.n_elements,
                    n_bytes: t.n_bytes,
                }),
            }
        }
        by_type.sort_by_key(|s| s.ggml_type.id());
        ModelSummary {
            path: self.path().map(|p| p.display().to_string()),
            version: self.version(),
            file_bytes: self.file_size() as u64,
            name: self.get_str("general.name").ok().map(str::to_string),
            architecture,
            alignment: self.alignment(),
            hyperparameters,
            other_metadata,
            n_params: self.n_params(),
            tensor_bytes: self.tensor_bytes(),
            tensors,
            by_type,
        }
    }
}

/// Longest rendered metadata value kept whole in a summary (a chat template is longer).
const MAX_VALUE_CHARS: usize = 100;

/// Cuts `s` to `max` characters, noting how long it was.
fn abbreviate(s: String, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s;
    }
    let head: String = s.chars().take(max).collect();
    format!("{head}… ({n} chars)")
}

/// Writes `n` with thousands separators: 134515008 → `134,515,008`.
// Safe arithmetic: `digits` has at most 20 characters (u64::MAX) and `i < digits.len()`.
#[allow(clippy::arithmetic_side_effects)]
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl fmt::Display for ModelSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.path {
            writeln!(f, "file:          {p}")?;
        }
        writeln!(
            f,
            "format:        GGUF v{}, {} ({} bytes), alignment {}",
            self.version,
            human_bytes(self.file_bytes),
            thousands(self.file_bytes),
            self.alignment
        )?;
        let or_unknown = |s: &Option<String>| s.clone().unwrap_or_else(|| "(unknown)".into());
        writeln!(f, "name:          {}", or_unknown(&self.name))?;
        writeln!(f, "architecture:  {}", or_unknown(&self.architecture))?;
        writeln!(
            f,
            "parameters:    {} in {} tensors ({})",
            thousands(self.n_params),
            self.tensors.len(),
            human_bytes(self.tensor_bytes)
        )?;
        writeln!(f, "\nhyperparameters:")?;
        for (k, v) in &self.hyperparameters {
            writeln!(f, "  {k:<44} {v}")?;
        }
        writeln!(f, "\nmetadata:")?;
        for (k, v) in &self.other_metadata {
            writeln!(f, "  {k:<44} {v}")?;
        }
        writeln!(f, "\ntensor types:")?;
        for s in &self.by_type {
            writeln!(
                f,
                "  {:<7} {:>4} tensors {:>14} values {:>12}  ({:.2} bits/value)",
                s.ggml_type.name(),
                s.n_tensors,
                thousands(s.n_elements),
                human_bytes(s.n_bytes),
                s.ggml_type.bits_per_value()
            )?;
        }
        writeln!(f, "\ntensors:")?;
        writeln!(
            f,
            "  {:<32} {:<7} {:<16} {:>12}",
            "name", "type", "shape", "bytes"
        )?;
        for t in &self.tensors {
            writeln!(
                f,
                "  {:<32} {:<7} {:<16} {:>12}",
                t.name,
                t.ggml_type.name(),
                format!("{:?}", t.shape),
                thousands(t.n_bytes)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // tests: arithmetic on constants
mod tests {
    use super::{abbreviate, thousands};

    #[test]
    fn long_values_are_cut_on_char_boundaries() {
        assert_eq!(abbreviate("abc".into(), 3), "abc");
        assert_eq!(abbreviate("ééééé".into(), 2), "éé… (5 chars)");
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(134_515_008), "134,515,008");
    }
}
