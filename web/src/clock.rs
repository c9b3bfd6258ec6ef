//! A monotonic clock that works natively and in the browser.
//!
//! `std::time::Instant` panics on `wasm32-unknown-unknown` (there is no OS clock), so the browser
//! build reads `performance.now()`, which exists both in a page and in a Web Worker. Its
//! resolution there is coarsened by the browser (tens of microseconds without cross-origin
//! isolation): fine for kernels that run for milliseconds, which is all the page times.

/// Seconds since an arbitrary origin fixed for the life of the process (native) or of the page
/// or worker (browser). Only differences are meaningful.
#[cfg(not(target_arch = "wasm32"))]
pub fn now_seconds() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Seconds since an arbitrary origin fixed for the life of the process (native) or of the page
/// or worker (browser). Only differences are meaningful.
#[cfg(target_arch = "wasm32")]
pub fn now_seconds() -> f64 {
    crate::bindings::performance_now_ms() / 1000.0
}

/// Runs `f` once to warm up, then `repeat` times, and returns the median wall time in seconds
/// with the last result. The median, not the mean: one run disturbed by another process (or, in
/// the browser, by garbage collection) should not move the figure.
///
/// # Errors
/// `repeat == 0`, or whatever `f` returns.
pub fn time_median<R>(
    repeat: usize,
    mut f: impl FnMut() -> nanotensor::Result<R>,
) -> nanotensor::Result<(f64, R)> {
    if repeat == 0 {
        return Err(nanotensor::Error::invalid_arg(
            "repeat",
            "the repeat count must be at least 1",
        ));
    }
    let mut last = f()?;
    let mut times = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let t0 = now_seconds();
        last = f()?;
        times.push(now_seconds() - t0);
    }
    times.sort_by(f64::total_cmp);
    let mid = times.len() / 2;
    let median = if times.len() % 2 == 1 {
        times[mid]
    } else {
        0.5 * (times[mid - 1] + times[mid])
    };
    Ok((median, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_runs_and_zero_repeat() {
        let mut calls = 0;
        let (secs, last) = time_median(3, || {
            calls += 1;
            Ok(calls)
        })
        .unwrap();
        assert!(secs >= 0.0);
        assert_eq!((calls, last), (4, 4), "one warm-up plus three timed runs");
        assert!(time_median(0, || Ok(())).is_err());
    }
}
