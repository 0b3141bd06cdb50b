//! The one rule the registry, escrow and matcher follow for checking their
//! books around an upgrade.
//!
//! An upgrade's hooks have a fixed instruction limit (300 B on the IC)
//! while the state grows without bound: a `post_upgrade` that reads every
//! record would one day exceed it, and the upgrade would roll back just
//! when a fix is urgent. So:
//!
//! 1. `post_upgrade` does O(1) work: it opens the stable structures,
//!    applies the argument and checks what can be checked without reading
//!    the records (the configuration, bounded tables). If that is broken it
//!    traps: rolling the upgrade back onto the old module is cheap and safe,
//!    and the operator learns at once.
//! 2. The full check of every record runs after the upgrade, on a timer, in
//!    chunks of bounded work ([`BooksAudit`]); its cursor lives on the heap,
//!    so an upgrade starts the pass again. A pass starts after every install
//!    and upgrade and then once every [`AUDIT_EVERY_NS`].
//! 3. A broken record the pass finds is logged, counted and shown on the
//!    canister's `/metrics` page (`<canister>_audit_failures_total`,
//!    `<canister>_audit_broken_records`); it never traps. A trap in a timer
//!    that comes back would fix nothing, would hide the finding, and would
//!    take the canister's other timer work down with it; refusing upgrades
//!    instead would also refuse the fix of whatever broke the books.

use crate::metrics::MetricsPage;
use std::ops::Bound;

/// Records one chunk of the pass reads at most (every map entry counts one):
/// a few hundred million instructions, about 1% of an update's limit.
pub const AUDIT_CHUNK_RECORDS: usize = 5_000;

/// How often the audit timer runs a chunk.
pub const AUDIT_PERIOD_SECS: u64 = 30;

/// Time between the end of one pass and the start of the next (one day).
pub const AUDIT_EVERY_NS: u64 = 86_400_000_000_000;

/// Broken records a pass logs at most (it counts all of them).
const MAX_LOGGED_PER_PASS: u64 = 20;

/// What one chunk of a pass did.
pub struct Chunk<C> {
    /// Records read.
    pub read: usize,
    /// Where the pass goes on; `None` once it is complete.
    pub next: Option<C>,
}

/// What one chunk has read against its budget, as a canister's
/// [`Books::audit_chunk`] walks its maps in turn.
pub struct ChunkWork {
    read: usize,
    budget: usize,
}

impl ChunkWork {
    /// Nothing read yet; at most `budget` records may be.
    pub fn new(budget: usize) -> Self {
        Self { read: 0, budget }
    }

    /// Gives `entries` in order to `visit`, which checks one and returns how
    /// many records that read (the entry itself included), until the budget
    /// is spent: whether every entry was read. An entry is only taken while
    /// the budget lasts, so the caller's cursor, kept by `visit`, names the
    /// last entry read.
    pub fn scan<T>(
        &mut self,
        entries: impl IntoIterator<Item = T>,
        mut visit: impl FnMut(T) -> usize,
    ) -> bool {
        for entry in entries {
            if self.read >= self.budget {
                return false;
            }
            self.read += visit(entry);
        }
        true
    }

    /// The chunk ends with the budget spent; the pass goes on at `cursor`.
    pub fn pause<C>(self, cursor: C) -> Chunk<C> {
        Chunk {
            read: self.read,
            next: Some(cursor),
        }
    }

    /// The chunk ends with the pass complete.
    pub fn finish<C>(self) -> Chunk<C> {
        Chunk {
            read: self.read,
            next: None,
        }
    }
}

/// A canister's books as the audit reads them: in chunks of bounded work
/// from a cursor on, or in one go.
pub trait Books {
    /// Where a pass goes on, and anything it accumulates (running sums).
    type Cursor;

    /// Checks at most `request.budget` records from `request.cursor` on
    /// (from the start if `None`), pushing a description of each broken
    /// one to `request.broken`.
    fn audit_chunk(&self, request: ChunkRequest<'_, Self::Cursor>) -> Chunk<Self::Cursor>;

    /// Checks every record in one go (tests; canisters run
    /// [`Books::audit_chunk`] on a timer): the first broken record, if any.
    fn check_invariants(&self) -> Result<(), String> {
        let mut broken = Vec::new();
        let chunk = self.audit_chunk(ChunkRequest {
            cursor: None,
            budget: usize::MAX,
            broken: &mut broken,
        });
        debug_assert!(chunk.next.is_none());
        broken.into_iter().next().map_or(Ok(()), Err)
    }
}

/// What one chunk of a pass is asked to do, as [`Books::audit_chunk`] and
/// the checks of [`BooksAudit::run_chunk`] are given it.
pub struct ChunkRequest<'a, C> {
    /// Where the pass goes on; `None` at its start.
    pub cursor: Option<C>,
    /// Records the chunk reads at most.
    pub budget: usize,
    /// Where a description of each broken record goes.
    pub broken: &'a mut Vec<String>,
}

/// Books that keep their own [`BooksAudit`] beside them: the audit's timer
/// runs its chunks on them.
pub trait AuditedBooks: Books {
    /// The audit of these books.
    fn audit_mut(&mut self) -> &mut BooksAudit<Self::Cursor>;

    /// Runs a chunk of the books' audit if one is due (see
    /// [`BooksAudit::run_chunk`]).
    fn run_audit_chunk(&mut self, now_ns: u64, budget: usize, log: impl FnMut(&str)) {
        let mut audit = std::mem::take(self.audit_mut());
        audit.run_chunk(now_ns, budget, |request| self.audit_chunk(request), log);
        *self.audit_mut() = audit;
    }
}

/// The keys past `last` (all of them if `None`): where a chunk goes on
/// from the last record the pass read.
pub fn after<K>(last: Option<K>) -> (Bound<K>, Bound<K>) {
    (
        last.map_or(Bound::Unbounded, Bound::Excluded),
        Bound::Unbounded,
    )
}

/// A pass over a canister's records in bounded chunks, and what the passes
/// found. `C` is the canister's cursor: where the running pass goes on and
/// anything it accumulates (running sums). Heap state only.
#[derive(Debug)]
pub struct BooksAudit<C> {
    cursor: Option<C>,
    running: bool,
    /// When the last complete pass ended; `None` since install or upgrade.
    last_pass_end_ns: Option<u64>,
    /// Complete passes since install or upgrade.
    passes: u64,
    /// Broken records found, all passes together, since install or upgrade.
    failures_total: u64,
    /// Broken records found by the running pass so far.
    pass_failures: u64,
    /// Broken records the last complete pass found.
    last_pass_failures: u64,
    /// Records read by the running pass so far.
    pass_read: u64,
    /// The most recent broken record found.
    last_failure: Option<String>,
}

impl<C> Default for BooksAudit<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> BooksAudit<C> {
    /// No pass run yet; the first [`BooksAudit::run_chunk`] starts one.
    pub const fn new() -> Self {
        Self {
            cursor: None,
            running: false,
            last_pass_end_ns: None,
            passes: 0,
            failures_total: 0,
            pass_failures: 0,
            last_pass_failures: 0,
            pass_read: 0,
            last_failure: None,
        }
    }

    /// The running pass's cursor, for write hooks that keep its running
    /// sums current (a record already counted changes behind the cursor).
    pub fn cursor_mut(&mut self) -> Option<&mut C> {
        self.cursor.as_mut()
    }

    /// Whether a pass is under way.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Complete passes since install or upgrade.
    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// Broken records found since install or upgrade, all passes together.
    pub fn failures_total(&self) -> u64 {
        self.failures_total
    }

    /// Broken records the last complete pass found.
    pub fn last_pass_failures(&self) -> u64 {
        self.last_pass_failures
    }

    /// The most recent broken record found, if any.
    pub fn last_failure(&self) -> Option<&str> {
        self.last_failure.as_deref()
    }

    /// Runs one chunk at `now_ns` if a pass is due or under way: `check`
    /// gets the cursor (`None` at the start of a pass), reads at most
    /// `budget` records from there, pushes a description of each broken
    /// one and says where to go on. Broken records are handed to `log` (the
    /// first few of each pass). Returns whether a chunk ran.
    pub fn run_chunk(
        &mut self,
        now_ns: u64,
        budget: usize,
        check: impl FnOnce(ChunkRequest<'_, C>) -> Chunk<C>,
        mut log: impl FnMut(&str),
    ) -> bool {
        if !self.running {
            let due = self
                .last_pass_end_ns
                .is_none_or(|end| now_ns >= end.saturating_add(AUDIT_EVERY_NS));
            if !due {
                return false;
            }
            self.running = true;
            self.cursor = None;
            self.pass_failures = 0;
            self.pass_read = 0;
        }
        let mut broken = Vec::new();
        let chunk = check(ChunkRequest {
            cursor: self.cursor.take(),
            budget,
            broken: &mut broken,
        });
        self.pass_read = self.pass_read.saturating_add(chunk.read as u64);
        for b in broken {
            if self.pass_failures < MAX_LOGGED_PER_PASS {
                log(&format!("BUG: audit found broken books: {b}"));
            }
            self.pass_failures = self.pass_failures.saturating_add(1);
            self.failures_total = self.failures_total.saturating_add(1);
            self.last_failure = Some(b);
        }
        self.cursor = chunk.next;
        if self.cursor.is_none() {
            self.running = false;
            self.passes = self.passes.saturating_add(1);
            self.last_pass_failures = self.pass_failures;
            self.last_pass_end_ns = Some(now_ns);
            if self.pass_failures > 0 {
                log(&format!(
                    "audit pass {} read {} records and found {} broken",
                    self.passes, self.pass_read, self.pass_failures
                ));
            }
        }
        true
    }

    /// Runs one whole pass at once (native tests, and a controller's
    /// check): every broken record it found.
    pub fn run_pass(
        &mut self,
        mut check: impl FnMut(ChunkRequest<'_, C>) -> Chunk<C>,
    ) -> Vec<String> {
        let mut found = Vec::new();
        let mut now = self
            .last_pass_end_ns
            .map_or(0, |t| t.saturating_add(AUDIT_EVERY_NS));
        loop {
            let ran = self.run_chunk(
                now,
                AUDIT_CHUNK_RECORDS,
                |request| {
                    let ChunkRequest {
                        cursor,
                        budget,
                        broken,
                    } = request;
                    let chunk = check(ChunkRequest {
                        cursor,
                        budget,
                        broken: &mut *broken,
                    });
                    found.extend(broken.iter().cloned());
                    chunk
                },
                |_| {},
            );
            if !ran || !self.running {
                return found;
            }
            now = now.saturating_add(1);
        }
    }

    /// The audit's lines of the `/metrics` page, named `<prefix>_audit_*`.
    pub fn encode_metrics(&self, prefix: &str, page: &mut MetricsPage) {
        page.counter(
            &format!("{prefix}_audit_failures_total"),
            "Broken records the background audit of the books found since install or upgrade (each pass counts them again).",
            self.failures_total.into(),
        );
        page.gauge(
            &format!("{prefix}_audit_broken_records"),
            "Broken records the last complete audit pass found (0: the books are sound).",
            self.last_pass_failures.into(),
        );
        page.counter(
            &format!("{prefix}_audit_passes_total"),
            "Complete audit passes since install or upgrade.",
            self.passes.into(),
        );
        page.gauge(
            &format!("{prefix}_audit_running"),
            "1 while an audit pass is under way.",
            u128::from(self.running),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_stops_where_its_budget_is_spent_and_counts_what_entries_read() {
        let mut work = ChunkWork::new(5);
        let mut seen = vec![];
        // Each entry reads itself and one record more.
        assert!(!work.scan(0..10, |i| {
            seen.push(i);
            2
        }));
        assert_eq!(seen, [0, 1, 2]);
        let chunk = work.pause(2);
        assert_eq!((chunk.read, chunk.next), (6, Some(2)));

        let mut work = ChunkWork::new(5);
        assert!(work.scan(0..5, |_| 1));
        let chunk: Chunk<u32> = work.finish();
        assert_eq!((chunk.read, chunk.next), (5, None));
    }

    /// A pass over 0..n that reports every multiple of 7 as broken.
    fn check(n: u32) -> impl FnMut(ChunkRequest<'_, u32>) -> Chunk<u32> {
        move |ChunkRequest {
                  cursor,
                  budget,
                  broken,
              }| {
            let start = cursor.unwrap_or(0);
            let end = (start + budget as u32).min(n);
            for i in start..end {
                if i % 7 == 0 {
                    broken.push(format!("record {i}"));
                }
            }
            Chunk {
                read: (end - start) as usize,
                next: (end < n).then_some(end),
            }
        }
    }

    #[test]
    fn a_pass_runs_in_chunks_and_counts_what_it_finds() {
        let mut a = BooksAudit::new();
        let mut logged = 0;
        let mut chunks = 0;
        let mut t = 0;
        while a.run_chunk(t, 10, check(295), |_| logged += 1) {
            chunks += 1;
            t += 1;
            if !a.is_running() {
                break;
            }
        }
        assert_eq!(chunks, 30);
        assert_eq!(a.passes(), 1);
        assert_eq!(a.last_pass_failures(), 43);
        assert_eq!(a.failures_total(), 43);
        // The first 20 broken records and the pass's summary.
        assert_eq!(logged, 20 + 1);
        assert!(!a.run_chunk(t + 1, 10, check(95), |_| {}), "not due yet");
        assert!(a.run_chunk(t + AUDIT_EVERY_NS, 10, check(95), |_| {}));
    }

    #[test]
    fn sound_books_show_no_failures() {
        let mut a: BooksAudit<u32> = BooksAudit::new();
        let found = a.run_pass(|_| Chunk {
            read: 3,
            next: None,
        });
        assert!(found.is_empty());
        assert_eq!(a.passes(), 1);
        assert_eq!(a.last_pass_failures(), 0);
    }
}
