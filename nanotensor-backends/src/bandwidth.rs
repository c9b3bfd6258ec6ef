//! A STREAM-like read-bandwidth probe: how many bytes per second `threads` threads can stream
//! from main memory.
//!
//! A decode step of a small model multiplies one row by every weight matrix, so it reads each
//! prepared weight once and does little arithmetic per byte: its speed limit is the rate at which
//! the cores can read memory. This probe measures that limit on the machine at hand, so a decode
//! speed can be stated as a fraction of it (`nanotensor bench-model`, `nanotensor bandwidth`).
//!
//! Method (the read-only analogue of STREAM's kernels, McCalpin 1995): a buffer of `bytes`,
//! in the storage prepared weights use ([`HugeBuf`]: huge pages where the system gives them),
//! filled once with known words (so every page is really backed: untouched pages of a fresh
//! allocation map to the shared zero page and would read from cache), is split into one
//! contiguous chunk per thread; each thread sums its chunk of `u64` words with wrapping adds.
//! Each pass reads the buffer twice, in two patterns, and the faster counts, because which one
//! draws more differs by CPU: as one sequential stream, and as [`STREAMS`] sequential streams in
//! lockstep, one cache line of each in turn, as a matrix–vector product over rows reads several
//! weight rows at once (on some cores one stream keeps fewer misses in flight than the core
//! can; on a Zen 4 core the eight streams measured 12.6 GB/s and the one stream 20). Integer
//! addition is associative, so the compiler may vectorise the loop and keep several
//! accumulators without changing the result — the loop is limited by loads, not by an add's
//! latency. A read is timed from the start of the first thread to the end of the last; the best
//! of `passes` passes is reported, as STREAM does, since interference (other processes,
//! frequency changes) only ever slows a pass down.
//!
//! The buffer must be much larger than the last-level cache, or the figure is the cache's
//! bandwidth: [`DEFAULT_BYTES`] is 1 GiB, several times the largest server L3 caches (a few
//! hundred MiB). Conversely, weights smaller than the L3 cache can be read faster than this
//! figure, so a decode step can reach more than 100 % of it.
//!
//! Threads are scoped `std` threads started for each pass; starting them costs microseconds,
//! against tens of milliseconds for a pass over the default buffer. The module is not compiled
//! for wasm32, which has neither threads nor a clock in a plain browser worker.

use std::time::Instant;

use nanotensor_core::{Error, Result};

use crate::hugebuf::HugeBuf;

const OP: &str = "bandwidth";

/// Default buffer size: 1 GiB, several times the last-level cache of current CPUs.
pub const DEFAULT_BYTES: usize = 1 << 30;
/// Sequential streams each thread reads in lockstep.
pub const STREAMS: usize = 8;
/// `u64` words per 64-byte cache line.
const LINE: usize = 8;
/// Default number of timed passes (the best is kept).
pub const DEFAULT_PASSES: usize = 3;

/// Result of [`read_bandwidth`].
#[derive(Clone, Debug, PartialEq)]
pub struct ReadBandwidth {
    /// Bytes read per pass (the buffer size rounded down to whole `u64` words).
    pub bytes: usize,
    /// Threads that read the buffer.
    pub threads: usize,
    /// Timed passes.
    pub passes: usize,
    /// Seconds of the fastest pass.
    pub best_seconds: f64,
    /// `bytes / best_seconds / 1e9`: decimal gigabytes per second, as STREAM reports.
    pub gb_per_s: f64,
    /// Wrapping sum of every word, the same in every pass; it proves each word was read
    /// (the buffer holds `0, 1, 2, …`, so it equals `n(n−1)/2` mod 2⁶⁴ for `n` words).
    pub checksum: u64,
}

/// Measures the read bandwidth of `threads` threads streaming a `bytes`-byte buffer, best of
/// `passes` passes (see the [module documentation](self)).
///
/// # Errors
/// [`Error::InvalidArgument`] when `threads` or `passes` is zero or the buffer holds fewer
/// words than there are threads; [`Error::OutOfMemory`] when the buffer cannot be allocated.
pub fn read_bandwidth(bytes: usize, threads: usize, passes: usize) -> Result<ReadBandwidth> {
    if threads == 0 || passes == 0 {
        return Err(Error::invalid_arg(
            OP,
            format!("threads ({threads}) and passes ({passes}) must be at least 1"),
        ));
    }
    let words = bytes / std::mem::size_of::<u64>();
    if words < threads {
        return Err(Error::invalid_arg(
            OP,
            format!("a buffer of {bytes} bytes is too small for {threads} threads"),
        ));
    }
    // The storage of prepared weights (huge pages where the system gives them), so the probe
    // reads memory the way a decode step reads its weights.
    let mut buf = HugeBuf::<u64>::try_zeroed(words).ok_or(Error::OutOfMemory {
        op: OP,
        bytes: bytes as u64,
    })?;
    // Each thread fills the chunk it will read, so its pages are first touched (and, on a NUMA
    // machine, placed) by that thread.
    let chunk = words.div_ceil(threads);
    on_chunks(&mut buf, chunk, |start, c| {
        for (i, w) in c.iter_mut().enumerate() {
            *w = (start + i) as u64;
        }
    });

    let mut best = f64::INFINITY;
    let mut checksum = 0;
    for _ in 0..passes {
        // Both read patterns in every pass: which one draws more depends on the CPU (on a Zen 4
        // core one sequential stream beats eight in lockstep by half).
        for streams in [1, STREAMS] {
            let t0 = Instant::now();
            let sums = read_chunks(&buf, chunk, streams);
            let seconds = t0.elapsed().as_secs_f64();
            checksum = sums.iter().fold(0u64, |a, &s| a.wrapping_add(s));
            best = best.min(seconds);
        }
    }
    let bytes = words * std::mem::size_of::<u64>();
    Ok(ReadBandwidth {
        bytes,
        threads,
        passes,
        best_seconds: best,
        // A pass is never timed below the clock's nanosecond, so the rate stays finite.
        gb_per_s: bytes as f64 / best.max(1e-9) / 1e9,
        checksum,
    })
}

/// Wrapping sum of `words`, read as `S` equal sequential streams in lockstep, a cache line of
/// each in turn (the words past the last whole round of lines are summed at the end). The line
/// loop is one load and one add per word into independent lanes, so it vectorises.
#[inline(never)]
fn sum_words<const S: usize>(words: &[u64]) -> u64 {
    let lines = words.len() / (S * LINE);
    let span = lines * LINE;
    let (body, tail) = words.split_at(span * S);
    let streams: [&[u64]; S] = std::array::from_fn(|s| &body[s * span..(s + 1) * span]);
    let mut acc = [0u64; LINE];
    for l in 0..lines {
        for stream in &streams {
            let line = &stream[l * LINE..(l + 1) * LINE];
            for (a, &w) in acc.iter_mut().zip(line) {
                *a = a.wrapping_add(w);
            }
        }
    }
    acc.iter().chain(tail).fold(0u64, |a, &w| a.wrapping_add(w))
}

/// Sums consecutive chunks of `chunk` words of `buf`, one scoped thread per chunk beyond the
/// first (which the calling thread reads), each as `streams` streams (1 or [`STREAMS`]), and
/// returns each chunk's sum.
fn read_chunks(buf: &[u64], chunk: usize, streams: usize) -> Vec<u64> {
    let sum_words = if streams == 1 {
        sum_words::<1>
    } else {
        sum_words::<STREAMS>
    };
    let mut parts = buf.chunks(chunk);
    let Some(first) = parts.next() else {
        return Vec::new();
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .map(|c| s.spawn(move || sum_words(std::hint::black_box(c))))
            .collect();
        let mut sums = vec![sum_words(std::hint::black_box(first))];
        // A summing thread cannot panic; should one fail anyway, its share counts as zero and
        // the checksum shows it.
        sums.extend(handles.into_iter().map(|h| h.join().unwrap_or(0)));
        sums
    })
}

/// Runs `f(first_index, chunk)` on consecutive chunks of `chunk` words of `buf`, one scoped
/// thread per chunk beyond the first.
fn on_chunks(buf: &mut [u64], chunk: usize, f: impl Fn(usize, &mut [u64]) + Sync) {
    let f = &f;
    std::thread::scope(|s| {
        let mut parts = buf.chunks_mut(chunk).enumerate();
        let first = parts.next();
        for (i, c) in parts {
            s.spawn(move || f(i * chunk, c));
        }
        if let Some((_, c)) = first {
            f(0, c);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n(n−1)/2` mod 2⁶⁴, the sum of `0..n`, computed in 128 bits.
    fn triangle(n: usize) -> u64 {
        let n = n as u128;
        (n * n.saturating_sub(1) / 2) as u64
    }

    #[test]
    fn reads_every_word_and_reports_a_finite_positive_rate() {
        // Small buffers (no timing claim): word counts below one round of stream lines, one
        // that does not split evenly among threads and streams, and an even one.
        for words in [3, 64, 100_003, 1 << 17] {
            for threads in [1, 2, 3] {
                if words < threads {
                    continue;
                }
                let r = read_bandwidth(8 * words + 5, threads, 2).unwrap();
                assert_eq!(r.bytes, 8 * words);
                assert_eq!(
                    r.checksum,
                    triangle(words),
                    "{words} words, {threads} threads"
                );
                assert!(r.gb_per_s.is_finite() && r.gb_per_s > 0.0, "{r:?}");
                assert!(r.best_seconds > 0.0, "{r:?}");
                assert_eq!((r.threads, r.passes), (threads, 2));
            }
        }
    }

    #[test]
    fn bad_arguments_are_typed_errors() {
        for (bytes, threads, passes) in [(1 << 20, 0, 1), (1 << 20, 1, 0), (8, 2, 1), (7, 1, 1)] {
            assert!(
                matches!(
                    read_bandwidth(bytes, threads, passes),
                    Err(Error::InvalidArgument { .. })
                ),
                "{bytes} {threads} {passes}"
            );
        }
    }
}
