//! `Backend::prepare_rows` against `Backend::prepare`, for every backend of the harness.

use nanotensor_core::{Backend, Element, Error, Tensor};

/// Weight shapes for `prepare_rows`: small and odd (one chunk, partial panels); more rows than
/// one column block of the blocked backend's packed `Wᵀ` (`NC` = 4096), which it fills one at a
/// time; more than one chunk of int8's (2²⁰ values) and a depth of several `kc` blocks.
const PREPARE_ROWS_SHAPES: [[usize; 2]; 4] = [[1, 5], [37, 13], [4200, 3], [1100, 1000]];

/// `prepare_rows` prepares what `prepare` prepares from the same matrix: `linear` agrees bit for
/// bit (every backend's preparation is deterministic); every pass of `fill` covers the rows in
/// increasing order; a NaN in the last row is the error `prepare` gives, at the same index; an
/// error of `fill` comes back as it is; an empty shape is refused before `fill` runs.
pub fn prepare_rows_cases<B: Backend, T: Element>(b: &B) {
    for (i, &[n, k]) in PREPARE_ROWS_SHAPES.iter().enumerate() {
        let w = Tensor::<T>::randn(&[n, k], 1.0, 500 + i as u64).unwrap();
        let x = Tensor::<T>::randn(&[3, k], 1.0, 600 + i as u64).unwrap();
        let whole = b.linear(&x, &b.prepare(w.clone()).unwrap()).unwrap();
        let mut asked = Vec::new();
        let pw = b
            .prepare_rows([n, k], |rows, out: &mut [T]| {
                out.copy_from_slice(&w.as_slice()[rows.start * k..rows.end * k]);
                asked.push(rows);
                Ok(())
            })
            .unwrap();
        assert_eq!(nanotensor_core::PreparedWeight::shape(&pw), [n, k]);
        let streamed = b.linear(&x, &pw).unwrap();
        assert_eq!(
            streamed.as_slice(),
            whole.as_slice(),
            "{} {n}x{k}",
            b.name()
        );
        // Passes over the rows: each starts at row 0 and continues where the last chunk ended.
        let mut next = 0;
        for r in &asked {
            if r.start == 0 && next == n {
                next = 0;
            }
            assert_eq!(r.start, next, "{} {n}x{k}: chunks {asked:?}", b.name());
            assert!(r.end > r.start);
            next = r.end;
        }
        assert_eq!(next, n, "{} {n}x{k}: chunks {asked:?}", b.name());

        // A NaN in the last row: the error `prepare` gives, at the same index.
        let bad = n * k - 1;
        let mut wn = w.clone();
        wn.as_mut_slice()[bad] = T::from_f64(f64::NAN);
        let e = expect_err(b.prepare_rows([n, k], |rows, out: &mut [T]| {
            out.copy_from_slice(&wn.as_slice()[rows.start * k..rows.end * k]);
            Ok(())
        }));
        assert!(
            matches!(e, Error::NonFinite { op: "prepare", operand: "weight", index, .. } if index == bad),
            "{}: {e}",
            b.name()
        );
        let whole_err = expect_err(b.prepare(wn));
        assert_eq!(e.to_string(), whole_err.to_string());
        // `fill`'s own error, failing on the last chunk.
        let e = expect_err(b.prepare_rows([n, k], |rows, out: &mut [T]| {
            if rows.end == n {
                return Err(Error::invalid_arg("fill", "the source ran dry"));
            }
            out.copy_from_slice(&w.as_slice()[rows.start * k..rows.end * k]);
            Ok(())
        }));
        assert!(e.to_string().contains("the source ran dry"), "{e}");
    }
    for shape in [[0, 4], [4, 0], [usize::MAX, 2]] {
        let e =
            expect_err(b.prepare_rows(shape, |_, _: &mut [T]| panic!("fill called for {shape:?}")));
        assert!(
            matches!(e, Error::InvalidShape { .. } | Error::SizeOverflow { .. }),
            "{shape:?}: {e}"
        );
    }
}

/// The error of a call expected to fail (prepared weights need not implement `Debug`).
fn expect_err<W>(r: Result<W, Error>) -> Error {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}
