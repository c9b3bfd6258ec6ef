//! The worker pool shared by the multi-threaded backends.
//!
//! A thin owner of a rayon pool: each backend value owns its pool, so two backends with different
//! `--threads` settings can live in one process, and idle workers sleep in rayon's scheduler rather
//! than spin. On wasm32 (no threads in a plain browser worker) work runs on the calling thread.

use nanotensor::{Error, Result};

/// A pool of `threads` workers; work submitted through [`Pool::install`] runs inside it.
#[derive(Debug)]
pub struct Pool {
    threads: usize,
    #[cfg(not(target_arch = "wasm32"))]
    inner: Option<rayon::ThreadPool>,
}

impl Pool {
    /// A pool with `threads` workers (`1` runs everything on the calling thread).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for zero threads or when the OS refuses to start them.
    pub fn new(threads: usize) -> Result<Self> {
        if threads == 0 {
            return Err(Error::invalid_arg(
                "threads",
                "the thread count must be at least 1",
            ));
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let inner = if threads == 1 {
                None
            } else {
                Some(
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .thread_name(|i| format!("nanotensor-{i}"))
                        .build()
                        .map_err(|e| Error::invalid_arg("threads", e.to_string()))?,
                )
            };
            Ok(Pool { threads, inner })
        }
        #[cfg(target_arch = "wasm32")]
        {
            Ok(Pool { threads: 1 })
        }
    }

    /// Available cores (`std::thread::available_parallelism`), at least 1.
    pub fn default_threads() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// Number of workers.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` inside the pool: rayon parallel iterators and `rayon::join` in `f` use its
    /// workers. With one thread, `f` runs on the caller (rayon's global pool is never touched).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(pool) = &self.inner {
            return pool.install(f);
        }
        f()
    }

    /// Runs `f(i)` for `i in 0..n` on the pool's workers (sequentially with one thread), and waits.
    pub fn for_each(&self, n: usize, f: impl Fn(usize) + Send + Sync) {
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(pool) = &self.inner {
            use rayon::prelude::*;
            pool.install(|| (0..n).into_par_iter().for_each(&f));
            return;
        }
        (0..n).for_each(f);
    }

    /// Splits `data` into consecutive chunks of `chunk_len` elements (the last may be shorter)
    /// and runs `f(chunk_index, chunk)` for each on the pool's workers, then waits. This is how a
    /// backend hands disjoint rows of an output to different threads without `unsafe`.
    pub fn for_each_chunk_mut<T: Send>(
        &self,
        data: &mut [T],
        chunk_len: usize,
        f: impl Fn(usize, &mut [T]) + Send + Sync,
    ) {
        let chunk_len = chunk_len.max(1);
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(pool) = &self.inner {
            use rayon::prelude::*;
            pool.install(|| {
                data.par_chunks_mut(chunk_len)
                    .enumerate()
                    .for_each(|(i, c)| f(i, c))
            });
            return;
        }
        data.chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn zero_threads_is_an_error() {
        assert!(Pool::new(0).is_err());
    }

    #[test]
    fn for_each_visits_every_index_once() {
        for t in [1, 2, 3] {
            let pool = Pool::new(t).unwrap();
            let sum = AtomicUsize::new(0);
            pool.for_each(100, |i| {
                sum.fetch_add(i, Ordering::Relaxed);
            });
            assert_eq!(sum.into_inner(), 4950);
            assert_eq!(pool.install(|| 7), 7);
            let mut v = vec![0usize; 10];
            pool.for_each_chunk_mut(&mut v, 3, |i, c| c.iter_mut().for_each(|x| *x = i));
            assert_eq!(v, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]);
        }
    }
}
