//! Property tests of the int8 quantizer (`QTensor`): for random shapes (1, primes, odd sizes),
//! both granularities and values spanning the whole f32 range (subnormal, ordinary, near
//! `f32::MAX`), quantize → dequantize reconstructs every element within half its group's scale;
//! NaN or infinity anywhere is a typed error naming the first bad index.
//!
//! The bound: a code is `q = round(x/s)` with `s = max|x|/127` over the group, so
//! `|x − s·q| ≤ s/2` exactly; the f32 evaluation adds one rounding of `x·(1/s)` and one of
//! `s·q` (relative 2⁻²⁴ each, so `1e-5·s/2 + 2e-7·|x|` covers both). A group whose scale would be
//! subnormal is flushed to scale 0 and holds only values below `127·f32::MIN_POSITIVE`.

use nanotensor_core::{Error, Granularity, QTensor, Tensor};
use proptest::prelude::*;

/// One value: mostly ordinary magnitudes, with tiny (subnormal) and huge ones mixed in.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -1000.0f32..1000.0,
        1 => -1e-38f32..1e-38,
        1 => -3e38f32..3e38,
        1 => Just(0.0f32),
    ]
}

fn operand() -> impl Strategy<Value = (usize, usize, Vec<f32>, bool)> {
    (
        1usize..7,
        prop_oneof![Just(1usize), Just(2), Just(13), Just(31), 1usize..70],
    )
        .prop_flat_map(|(r, c)| {
            (
                Just(r),
                Just(c),
                prop::collection::vec(value(), r * c),
                any::<bool>(),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn dequantized_error_is_at_most_half_a_scale((r, c, xs, per_row) in operand()) {
        let g = if per_row { Granularity::PerRow } else { Granularity::PerTensor };
        let x = Tensor::from_vec(xs, &[r, c]).unwrap();
        let q = QTensor::quantize(&x, g).unwrap();
        let d = q.dequantize::<f32>().unwrap();
        prop_assert_eq!(q.scales().len(), if per_row { r } else { 1 });
        for (i, (&a, &b)) in x.as_slice().iter().zip(d.as_slice()).enumerate() {
            let code = q.codes()[i];
            prop_assert!((-127..=127).contains(&code), "code {} at {}", code, i);
            let s = q.row_scale(i / c);
            if s == 0.0 {
                prop_assert!(a.abs() < 127.0 * f32::MIN_POSITIVE, "flushed {} at {}", a, i);
                prop_assert_eq!(b, 0.0);
            } else {
                let tol = s as f64 / 2.0 * (1.0 + 1e-5) + a.abs() as f64 * 2e-7;
                let err = (a as f64 - b as f64).abs();
                prop_assert!(err <= tol, "{}: {} -> {} (scale {}, err {} > {})", i, a, b, s, err, tol);
            }
        }
    }

    #[test]
    fn a_non_finite_value_is_a_typed_error_at_its_index(
        (r, c, mut xs, per_row) in operand(),
        pick in any::<prop::sample::Index>(),
        which in 0usize..3,
    ) {
        let bad = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][which];
        let at = pick.index(xs.len());
        xs[at] = bad;
        let g = if per_row { Granularity::PerRow } else { Granularity::PerTensor };
        let first = xs.iter().position(|v| !v.is_finite()).unwrap();
        match QTensor::quantize_slice(&xs, &[r, c], g) {
            Err(Error::NonFinite { index, .. }) => prop_assert_eq!(index, first),
            other => prop_assert!(false, "expected NonFinite at {}, got {:?}", first, other),
        }
    }
}
