//! The instruction-set extensions of this CPU, detected once per process.
//!
//! Every SIMD path of the crate decides from one [`CpuFeatures`] value: the blocked f32 kernels
//! ([`crate::blocked::kernel::F32Kernel::available_on`]), the int8 kernels
//! (`crate::int8::kernel::Kernel::best`), the flash tiles ([`crate::flash::kernel::Isa::best`])
//! and the multiversioned loops ([`crate::multiversion::Level::best`]). A kernel enabling
//! `#[target_feature(enable = "...")]` runs only after the path that chose it saw each of those
//! features set here, which is the safety argument of the `unsafe` calls into it.
//!
//! A `true` field is a fact about the CPU: outside this crate a `CpuFeatures` can only be read
//! (from [`features`]) or be [`CpuFeatures::NONE`], never built with a field set by hand, and
//! inside it only `detect` sets one. On
//! targets other than x86/x86-64, and under Miri (which cannot run SIMD intrinsics), every field
//! is `false`, so the portable paths run.

use std::sync::OnceLock;

/// Which x86 extensions the CPU reports (`is_x86_feature_detected!`); all `false` elsewhere.
///
/// `#[non_exhaustive]` keeps the fields read-only outside the crate: a value built by hand could
/// claim a feature the CPU lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CpuFeatures {
    /// AVX2 (256-bit integer and float vectors).
    pub avx2: bool,
    /// FMA3 (fused multiply-add on 128/256-bit vectors).
    pub fma: bool,
    /// F16C (f16 ↔ f32 conversion).
    pub f16c: bool,
    /// AVX-512 Foundation (512-bit vectors, mask registers).
    pub avx512f: bool,
    /// AVX-512 byte and word instructions.
    pub avx512bw: bool,
    /// AVX-512 on 128/256-bit vectors.
    pub avx512vl: bool,
    /// AVX-512 VNNI (`vpdpbusd`, u8 × i8 dot products into i32).
    pub avx512vnni: bool,
    /// AVX-512 BF16 (bf16 dot products and conversions).
    pub avx512bf16: bool,
    /// AVX-VNNI (the VEX-encoded `vpdpbusd` on 256-bit vectors).
    pub avx_vnni: bool,
    /// The vendor is AMD (CPUID vendor string `AuthenticAMD`): instruction costs differ by
    /// vendor where the features are the same (see `blocked::half16`).
    pub amd: bool,
}

impl CpuFeatures {
    /// No extension: the portable paths everywhere.
    pub const NONE: CpuFeatures = CpuFeatures {
        avx2: false,
        fma: false,
        f16c: false,
        avx512f: false,
        avx512bw: false,
        avx512vl: false,
        avx512vnni: false,
        avx512bf16: false,
        avx_vnni: false,
        amd: false,
    };

    /// Asks the CPU (uncached; [`features`] caches it).
    fn detect() -> Self {
        #[cfg(all(any(target_arch = "x86", target_arch = "x86_64"), not(miri)))]
        {
            use std::arch::is_x86_feature_detected as has;
            CpuFeatures {
                avx2: has!("avx2"),
                fma: has!("fma"),
                f16c: has!("f16c"),
                avx512f: has!("avx512f"),
                avx512bw: has!("avx512bw"),
                avx512vl: has!("avx512vl"),
                avx512vnni: has!("avx512vnni"),
                avx512bf16: has!("avx512bf16"),
                avx_vnni: has!("avxvnni"),
                amd: vendor_is_amd(),
            }
        }
        #[cfg(not(all(any(target_arch = "x86", target_arch = "x86_64"), not(miri))))]
        CpuFeatures::NONE
    }
}

/// Whether CPUID leaf 0 names AMD as the vendor.
#[cfg(all(any(target_arch = "x86", target_arch = "x86_64"), not(miri)))]
fn vendor_is_amd() -> bool {
    #[cfg(target_arch = "x86")]
    use std::arch::x86::__cpuid;
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::__cpuid;
    // SAFETY: CPUID leaf 0 exists on every x86-64 CPU (and every x86 CPU Rust targets) and
    // only reads identification registers. (The block is needed on toolchains where `__cpuid`
    // is still an `unsafe fn`.)
    #[allow(unused_unsafe)]
    let r = unsafe { __cpuid(0) };
    let vendor = [
        r.ebx.to_le_bytes(),
        r.edx.to_le_bytes(),
        r.ecx.to_le_bytes(),
    ]
    .concat();
    vendor == b"AuthenticAMD"
}

/// This CPU's features, detected on first use and cached for the process.
pub fn features() -> &'static CpuFeatures {
    static FEATURES: OnceLock<CpuFeatures> = OnceLock::new();
    FEATURES.get_or_init(CpuFeatures::detect)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cached value is the CPU's answer, and every field agrees with std's own check.
    #[test]
    fn features_match_std_detection() {
        let f = *features();
        assert_eq!(f, CpuFeatures::detect());
        assert_eq!(features() as *const _, features() as *const _);
        #[cfg(all(any(target_arch = "x86", target_arch = "x86_64"), not(miri)))]
        {
            use std::arch::is_x86_feature_detected as has;
            assert_eq!(f.avx2, has!("avx2"));
            assert_eq!(f.fma, has!("fma"));
            assert_eq!(f.avx512f, has!("avx512f"));
            assert_eq!(f.avx512vnni, has!("avx512vnni"));
            assert_eq!(f.avx_vnni, has!("avxvnni"));
        }
        #[cfg(not(all(any(target_arch = "x86", target_arch = "x86_64"), not(miri))))]
        assert_eq!(f, CpuFeatures::NONE);
    }
}
