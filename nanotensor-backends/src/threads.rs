//! The worker pool shared by the multi-threaded backends: a fork-join team built for many
//! short jobs.
//!
//! A decode step of a small LLaMA is ~200 products of a few hundred kilobytes each, tens of
//! microseconds apiece; a fork-join that costs microseconds (a general work-stealing pool whose
//! caller blocks on a condition variable while the job is injected, and whose workers are woken
//! through the OS) eats the gain of the second core. This pool is built the other way round:
//!
//! * the **caller takes part**: `threads − 1` workers plus the calling thread run the tasks, which
//!   each participant claims from a shared counter (`next.fetch_add(1)`), so a late or
//!   preempted worker just claims fewer tasks;
//! * a job is **published through atomics** (a pointer to it and an epoch counter); workers that
//!   finished a job **spin** for up to [`SPIN`] waiting for the next one, so back-to-back jobs cost
//!   a cache-line hand-off (well under a microsecond) instead of a wake-up, and only then
//!   **park** (no CPU burnt while idle); the caller unparks parked workers when it posts a job;
//! * the caller returns only after it has retracted the job and no worker is **active** in it
//!   (a counter each worker raises before reading the job and lowers when done), which is what
//!   lets a job borrow the caller's stack.
//!
//! Each backend value owns its pool, so two backends with different `--threads` settings can live
//! in one process. A job posted from inside a task (nested), or while another thread is using the
//! same pool, runs on the calling thread alone. On wasm32 (no threads in a plain browser worker)
//! everything runs on the calling thread.

use nanotensor_core::{Error, Result};

#[cfg(not(target_arch = "wasm32"))]
use team::Team;

/// How long an idle worker spins for the next job before parking. A decode step posts its jobs
/// microseconds apart and the gap between steps (sampling) is tens of microseconds, so workers
/// stay awake through generation; an idle process parks them within this time.
pub const SPIN: std::time::Duration = std::time::Duration::from_micros(200);

/// A pool of `threads` participants (the caller and `threads − 1` workers).
#[derive(Debug)]
pub struct Pool {
    threads: usize,
    #[cfg(not(target_arch = "wasm32"))]
    team: Option<Team>,
}

impl Pool {
    /// A pool with `threads` participants (`1` runs everything on the calling thread).
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
            let team = if threads == 1 {
                None
            } else {
                Some(
                    Team::new(threads - 1)
                        .map_err(|e| Error::invalid_arg("threads", e.to_string()))?,
                )
            };
            Ok(Pool { threads, team })
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

    /// Number of participants (workers plus the caller).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(i)` for `i in 0..n` on the pool (sequentially with one thread), and waits.
    /// Each index runs exactly once, on whichever participant claims it first.
    ///
    /// # Panics
    /// Re-raises the first panic of a task, after every participant has left the job.
    pub fn for_each(&self, n: usize, f: impl Fn(usize) + Send + Sync) {
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(team) = &self.team {
            team.run(n, &f);
            return;
        }
        (0..n).for_each(f);
    }

    /// Splits `data` into consecutive chunks of `chunk_len` elements (the last may be shorter)
    /// and runs `f(chunk_index, chunk)` for each on the pool, then waits. This is how a backend
    /// hands disjoint rows of an output to different threads.
    ///
    /// # Panics
    /// Re-raises the first panic of a task, after every participant has left the job.
    pub fn for_each_chunk_mut<T: Send>(
        &self,
        data: &mut [T],
        chunk_len: usize,
        f: impl Fn(usize, &mut [T]) + Send + Sync,
    ) {
        let chunk_len = chunk_len.max(1);
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(team) = &self.team {
            let chunks = data.len().div_ceil(chunk_len);
            if chunks > 1 {
                let base = team::SendPtr(data.as_mut_ptr());
                let len = data.len();
                team.run(chunks, &|i| {
                    let start = i * chunk_len;
                    let end = len.min(start + chunk_len);
                    // SAFETY: `base` points to `len` elements of `data`, which stays mutably
                    // borrowed until `run` returns (after every task ended); `run` hands out
                    // each index `i < chunks` exactly once, so the ranges `start..end` of
                    // concurrent tasks are disjoint and inside `data`.
                    let chunk = unsafe {
                        std::slice::from_raw_parts_mut(base.get().add(start), end - start)
                    };
                    f(i, chunk);
                });
                return;
            }
        }
        data.chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod team {
    //! The spinning fork-join team behind [`super::Pool`] (native targets only).

    use super::SPIN;

    /// Polls of a shared flag with a `pause` hint before a waiting thread starts yielding its
    /// core (a few microseconds: about one short job).
    const SPIN_BEFORE_YIELD: u32 = 500;
    use std::any::Any;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};
    use std::sync::{Arc, Mutex, TryLockError};
    use std::thread::{JoinHandle, Thread};
    use std::time::Instant;

    /// A raw pointer that may cross threads; whoever dereferences it proves disjointness.
    pub(super) struct SendPtr<T>(pub(super) *mut T);

    impl<T> Clone for SendPtr<T> {
        fn clone(&self) -> Self {
            *self
        }
    }
    impl<T> Copy for SendPtr<T> {}

    // SAFETY: the pointer is only dereferenced inside `Pool::for_each_chunk_mut`, whose tasks
    // touch disjoint ranges of a slice of `T: Send` that outlives the job.
    unsafe impl<T: Send> Send for SendPtr<T> {}
    // SAFETY: as above; sharing the pointer value itself is harmless.
    unsafe impl<T: Send> Sync for SendPtr<T> {}

    impl<T> SendPtr<T> {
        /// The pointer. (A method, so closures capture the whole `Sync` wrapper.)
        pub(super) fn get(self) -> *mut T {
            self.0
        }
    }

    thread_local! {
        /// True while this thread runs a task of some pool: a job posted then runs inline.
        static IN_TASK: Cell<bool> = const { Cell::new(false) };
    }

    /// One posted job, living on the caller's stack for the duration of [`Team::run`].
    struct Job<'a> {
        task: &'a (dyn Fn(usize) + Sync),
        tasks: usize,
        /// Next unclaimed task index.
        next: AtomicUsize,
    }

    impl Job<'_> {
        /// Claims and runs tasks until none is left.
        fn work(&self) {
            loop {
                let i = self.next.fetch_add(1, SeqCst);
                if i >= self.tasks {
                    return;
                }
                (self.task)(i);
            }
        }
    }

    /// What the caller and the workers share.
    struct Shared {
        /// The job in progress (a `*const Job` with its lifetime erased), null between jobs.
        job: AtomicPtr<()>,
        /// Bumped once per posted job; workers wait for it to change.
        epoch: AtomicU64,
        /// Workers currently between looking at `job` and being done with it.
        active: AtomicUsize,
        /// Per worker: parked (or about to park), so the caller must unpark it.
        sleeping: Vec<AtomicBool>,
        shutdown: AtomicBool,
        /// The first panic raised by a worker's task, re-raised by the caller.
        panic: Mutex<Option<Box<dyn Any + Send>>>,
    }

    /// `workers` threads plus a lock that serialises callers.
    pub(super) struct Team {
        shared: Arc<Shared>,
        threads: Vec<Thread>,
        handles: Vec<JoinHandle<()>>,
        /// Held by the caller of the job in flight; a second caller runs its job inline.
        submit: Mutex<()>,
    }

    impl std::fmt::Debug for Team {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Team")
                .field("workers", &self.threads.len())
                .finish()
        }
    }

    impl Team {
        /// Starts `workers` threads.
        pub(super) fn new(workers: usize) -> std::io::Result<Self> {
            let shared = Arc::new(Shared {
                job: AtomicPtr::new(std::ptr::null_mut()),
                epoch: AtomicU64::new(0),
                active: AtomicUsize::new(0),
                sleeping: (0..workers).map(|_| AtomicBool::new(false)).collect(),
                shutdown: AtomicBool::new(false),
                panic: Mutex::new(None),
            });
            let mut team = Team {
                shared: Arc::clone(&shared),
                threads: Vec::with_capacity(workers),
                handles: Vec::with_capacity(workers),
                submit: Mutex::new(()),
            };
            for w in 0..workers {
                let s = Arc::clone(&shared);
                // On error `team` drops here, which stops the workers already started.
                let h = std::thread::Builder::new()
                    .name(format!("nanotensor-{w}"))
                    .spawn(move || worker(&s, w))?;
                team.threads.push(h.thread().clone());
                team.handles.push(h);
            }
            Ok(team)
        }

        /// Runs `task(i)` for every `i < tasks` on the caller and the workers; returns when all
        /// have run and no worker still looks at the job.
        pub(super) fn run(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
            if tasks == 0 {
                return;
            }
            let guard = match self.submit.try_lock() {
                // A poisoned lock only means an earlier job's task panicked; the team is fine.
                Ok(g) if tasks > 1 && !IN_TASK.get() => g,
                Err(TryLockError::Poisoned(p)) if tasks > 1 && !IN_TASK.get() => p.into_inner(),
                _ => {
                    // One task, a nested job, or another thread's job in flight: run inline.
                    (0..tasks).for_each(task);
                    return;
                }
            };
            let job = Job {
                task,
                tasks,
                next: AtomicUsize::new(0),
            };
            let s = &*self.shared;
            s.job.store(&job as *const Job<'_> as *mut (), SeqCst);
            s.epoch.fetch_add(1, SeqCst);
            for (asleep, t) in s.sleeping.iter().zip(&self.threads) {
                if asleep.load(SeqCst) {
                    t.unpark();
                }
            }
            // Retracts the job and waits for the workers even if a task panics on the caller,
            // so no worker can read `job` after this frame is gone.
            struct Retract<'a>(&'a Shared);
            impl Drop for Retract<'_> {
                fn drop(&mut self) {
                    let s = self.0;
                    s.job.store(std::ptr::null_mut(), SeqCst);
                    // A worker that read the job counted itself in `active` before reading it,
                    // hence before the retraction; one that counts itself later reads a null
                    // job (all these accesses are SeqCst: one total order). So `active == 0`
                    // after the retraction means nobody holds the job any more. (Cumulative
                    // entered/exited counters would not do: a late worker's quick exit could
                    // make up for a slow one still running.)
                    let mut spins = 0u32;
                    while s.active.load(SeqCst) != 0 {
                        // A worker still in the job may have been preempted: after a short
                        // spin, give the core away so it can finish.
                        spins += 1;
                        if spins < SPIN_BEFORE_YIELD {
                            std::hint::spin_loop();
                        } else {
                            std::thread::yield_now();
                        }
                    }
                }
            }
            {
                let _retract = Retract(s);
                IN_TASK.set(true);
                let _reset = ResetInTask;
                job.work();
            }
            drop(guard);
            let panic = s.panic.lock().map(|mut p| p.take()).unwrap_or(None);
            if let Some(p) = panic {
                std::panic::resume_unwind(p);
            }
        }
    }

    /// Clears [`IN_TASK`] on scope exit (also when unwinding).
    struct ResetInTask;

    impl Drop for ResetInTask {
        fn drop(&mut self) {
            IN_TASK.set(false);
        }
    }

    impl Drop for Team {
        fn drop(&mut self) {
            self.shared.shutdown.store(true, SeqCst);
            self.shared.epoch.fetch_add(1, SeqCst);
            for t in &self.threads {
                t.unpark();
            }
            for h in self.handles.drain(..) {
                // A worker never panics (tasks are caught), so there is nothing to report.
                let _ = h.join();
            }
        }
    }

    /// The loop of worker `w`: wait for a new epoch (spin, then park), help with the job.
    fn worker(s: &Shared, w: usize) {
        IN_TASK.set(true);
        // The epoch the team was created with: a job (or a shutdown) posted before this thread
        // got here must still count as new.
        let mut seen = 0;
        loop {
            // Wait for the next epoch: spin for up to SPIN, then park until unparked.
            let mut spins = 0u32;
            let mut since = None;
            loop {
                let e = s.epoch.load(SeqCst);
                if e != seen {
                    seen = e;
                    break;
                }
                spins += 1;
                if spins < SPIN_BEFORE_YIELD {
                    std::hint::spin_loop();
                    continue;
                }
                // Past the first microseconds, yield between polls: on a busy machine the
                // core may be wanted by the thread that will post the next job.
                std::thread::yield_now();
                let start = *since.get_or_insert_with(Instant::now);
                if start.elapsed() < SPIN {
                    continue;
                }
                s.sleeping[w].store(true, SeqCst);
                // Re-check after announcing the nap: a caller that bumped the epoch before
                // seeing `sleeping` is caught here; one that bumps it later unparks us.
                if s.epoch.load(SeqCst) == seen && !s.shutdown.load(SeqCst) {
                    std::thread::park();
                }
                s.sleeping[w].store(false, SeqCst);
                since = None;
                spins = 0;
            }
            if s.shutdown.load(SeqCst) {
                return;
            }
            s.active.fetch_add(1, SeqCst);
            let p = s.job.load(SeqCst) as *const Job<'_>;
            if !p.is_null() {
                // SAFETY: a non-null `job` was stored by `Team::run` from a live `Job` on its
                // stack, and `run` does not return (nor unwind past the job) before `active`
                // is back to zero, which needs this worker's decrement below; the increment
                // happened before this load.
                let job = unsafe { &*p };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.work()));
                if let Err(e) = r {
                    // Stop the others claiming more tasks of a failed job, and report it.
                    job.next.store(job.tasks, SeqCst);
                    if let Ok(mut slot) = s.panic.lock() {
                        slot.get_or_insert(e);
                    }
                }
            }
            s.active.fetch_sub(1, SeqCst);
        }
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
            for n in [0, 1, 2, 5, 100] {
                let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                pool.for_each(n, |i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(
                    hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                    "{t} {n}"
                );
            }
            let mut v = vec![0usize; 10];
            pool.for_each_chunk_mut(&mut v, 3, |i, c| c.iter_mut().for_each(|x| *x = i));
            assert_eq!(v, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]);
        }
    }

    #[test]
    fn pools_dropped_at_once_or_after_a_job_shut_down() {
        use std::cell::RefCell;
        use std::sync::{mpsc, Barrier};
        use std::time::Duration;

        // Worker threads that ran a task and have not exited yet. A worker registers a
        // thread-local guard in its task; the guard's destructor runs when the thread exits,
        // before a join of that thread returns.
        static LIVE_WORKERS: AtomicUsize = AtomicUsize::new(0);
        struct Live;
        impl Drop for Live {
            fn drop(&mut self) {
                LIVE_WORKERS.fetch_sub(1, Ordering::SeqCst);
            }
        }
        thread_local! {
            static GUARD: RefCell<Option<Live>> = const { RefCell::new(None) };
        }

        // The pools are made and dropped on a helper thread, which reports each drop; a drop
        // that hangs (a worker that misses the shutdown) fails the test instead of stalling it.
        let (done, drops) = mpsc::channel();
        let helper = std::thread::spawn(move || {
            for i in 0..200 {
                let pool = Pool::new(3).unwrap();
                if i % 2 == 0 {
                    // Three tasks meeting at a barrier: each of the three participants (the
                    // caller and both workers) runs exactly one.
                    let barrier = Barrier::new(3);
                    pool.for_each(3, |_| {
                        let name = std::thread::current().name().map(str::to_owned);
                        if name.is_some_and(|n| n.starts_with("nanotensor-")) {
                            LIVE_WORKERS.fetch_add(1, Ordering::SeqCst);
                            GUARD.with(|g| *g.borrow_mut() = Some(Live));
                        }
                        barrier.wait();
                    });
                    assert_eq!(LIVE_WORKERS.load(Ordering::SeqCst), 2, "round {i}");
                }
                // Dropped at once (odd rounds: shutdown may be posted before a worker first
                // looks at the epoch) or after a job (even rounds).
                drop(pool);
                assert_eq!(
                    LIVE_WORKERS.load(Ordering::SeqCst),
                    0,
                    "round {i}: a worker outlived its pool"
                );
                done.send(i).unwrap();
            }
        });
        for i in 0..200 {
            if let Err(e) = drops.recv_timeout(Duration::from_secs(20)) {
                match e {
                    // The helper panicked: re-raise its assertion.
                    mpsc::RecvTimeoutError::Disconnected => std::panic::resume_unwind(
                        helper
                            .join()
                            .expect_err("the helper ended early without a panic"),
                    ),
                    mpsc::RecvTimeoutError::Timeout => {
                        panic!("round {i}: dropping the pool did not return within 20 s")
                    }
                }
            }
        }
        helper.join().unwrap();
    }

    #[test]
    fn many_short_jobs_and_parked_workers_complete() {
        let pool = Pool::new(2).unwrap();
        let sum = AtomicUsize::new(0);
        for round in 0..2000 {
            pool.for_each(4, |i| {
                sum.fetch_add(i + 1, Ordering::Relaxed);
            });
            if round % 500 == 0 {
                // Long enough for the worker to park; the next job must wake it.
                std::thread::sleep(SPIN * 3);
            }
        }
        assert_eq!(sum.into_inner(), 2000 * 10);
    }

    #[test]
    fn every_task_has_finished_when_a_job_returns() {
        // Tasks of uneven length on several workers: the caller must not return while a slow
        // worker is still writing its chunk (the next round would see a stale value).
        for threads in [3, 4] {
            let pool = Pool::new(threads).unwrap();
            let mut v = vec![0usize; 24];
            for round in 1..=3000 {
                pool.for_each_chunk_mut(&mut v, 2, |i, c| {
                    for _ in 0..(i * 7 + round) % 64 {
                        std::hint::spin_loop();
                    }
                    c.iter_mut().for_each(|x| *x = round);
                });
                assert!(
                    v.iter().all(|&x| x == round),
                    "{threads} threads, round {round}"
                );
            }
        }
    }

    #[test]
    fn nested_and_concurrent_jobs_run_inline() {
        let pool = Pool::new(2).unwrap();
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..200 {
                        pool.for_each(3, |_| {
                            pool.for_each(2, |j| {
                                total.fetch_add(j + 1, Ordering::Relaxed);
                            });
                        });
                    }
                });
            }
        });
        // 3 threads × 200 jobs × 3 tasks × (1 + 2).
        assert_eq!(total.into_inner(), 3 * 200 * 3 * 3);
    }

    #[test]
    fn a_task_panic_reaches_the_caller_and_the_pool_survives() {
        let pool = Pool::new(2).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.for_each(64, |i| {
                if i == 40 {
                    panic!("task 40");
                }
            })
        }));
        assert!(r.is_err());
        let sum = AtomicUsize::new(0);
        pool.for_each(10, |i| {
            sum.fetch_add(i, Ordering::Relaxed);
        });
        assert_eq!(sum.into_inner(), 45);
    }
}
