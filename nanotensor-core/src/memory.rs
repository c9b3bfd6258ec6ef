//! Memory budgets: how much an operation may allocate before it refuses.
//!
//! Linux over-commits memory, so a 40 GB allocation "succeeds" and the process is killed later
//! when the pages are touched. NanoTensor therefore computes what an operation needs *before* it
//! allocates and compares it with a budget: by default half the physical memory.

use crate::error::{Error, Result};

/// Fallback when the physical memory cannot be read (non-Linux hosts, wasm32).
const FALLBACK_PHYSICAL: u64 = 4 << 30;

/// Physical memory of the machine in bytes (`MemTotal` of `/proc/meminfo`), or a 4 GiB guess
/// where that file does not exist. Read once per process and cached: every attention call asks
/// for the default budget, and a decode step must not read a file (and allocate) each time.
pub fn physical_memory_bytes() -> u64 {
    static CACHED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *CACHED.get_or_init(read_physical_memory)
}

fn read_physical_memory() -> u64 {
    #[cfg(target_os = "linux")]
    {
        if let Ok(info) = std::fs::read_to_string("/proc/meminfo") {
            for line in info.lines() {
                if let Some(rest) = line.strip_prefix("MemTotal:") {
                    let kb = rest.trim().trim_end_matches("kB").trim();
                    if let Ok(kb) = kb.parse::<u64>() {
                        return kb.saturating_mul(1024);
                    }
                }
            }
        }
    }
    FALLBACK_PHYSICAL
}

/// The default budget for a single operation's scratch memory: half the physical memory.
pub fn default_budget() -> u64 {
    physical_memory_bytes() / 2
}

/// Fails with [`Error::MemoryBudget`] when `needed > budget`. `detail` is appended to the message
/// and should start with a space, e.g. `" for 1 × 100000 × 100000 f32 scores"`.
pub fn check_budget(op: &'static str, needed: u64, budget: u64, detail: &str) -> Result<()> {
    if needed > budget {
        return Err(Error::MemoryBudget {
            op,
            needed,
            budget,
            detail: detail.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_memory_is_plausible() {
        let p = physical_memory_bytes();
        assert!(p >= 64 << 20, "{p}");
        assert!(default_budget() <= p);
    }

    #[test]
    fn budget_refuses_only_above() {
        assert!(check_budget("x", 10, 10, "").is_ok());
        let e = check_budget("x", 11, 10, " for y").unwrap_err();
        assert!(e.to_string().contains("for y"), "{e}");
    }
}
