//! The bounded generation queue. Generating an answer holds a CPU (or GPU) for seconds, so
//! only `workers` answers run at once and at most `waiting` more wait; beyond that a request
//! is refused at once (503 with Retry-After) rather than left to time out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Slots for running answers and a bound on waiting ones.
pub struct GenerationQueue {
    slots: Arc<Semaphore>,
    workers: usize,
    admitted: Arc<AtomicUsize>,
    limit: usize,
}

/// A place in the queue; dropping it leaves the queue.
pub struct Ticket {
    slots: Arc<Semaphore>,
    admitted: Arc<AtomicUsize>,
}

/// A running generation: holds its slot and its place until dropped.
pub struct Running {
    _permit: OwnedSemaphorePermit,
    _ticket: Ticket,
}

impl GenerationQueue {
    /// `workers` generations at once, `waiting` more queued.
    pub fn new(workers: usize, waiting: usize) -> Self {
        let workers = workers.max(1);
        GenerationQueue {
            slots: Arc::new(Semaphore::new(workers)),
            workers,
            admitted: Arc::new(AtomicUsize::new(0)),
            limit: workers + waiting,
        }
    }

    /// A place in the queue, or `None` when it is full.
    pub fn enter(&self) -> Option<Ticket> {
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()?;
        Some(Ticket {
            slots: self.slots.clone(),
            admitted: self.admitted.clone(),
        })
    }

    /// Answers admitted but not yet running.
    pub fn waiting(&self) -> usize {
        let running = self.workers - self.slots.available_permits();
        self.admitted
            .load(Ordering::Acquire)
            .saturating_sub(running)
    }
}

impl Ticket {
    /// Waits for a generation slot (`None` only if the queue was shut down).
    pub async fn start(self) -> Option<Running> {
        let permit = self.slots.clone().acquire_owned().await.ok()?;
        Some(Running {
            _permit: permit,
            _ticket: self,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_beyond_workers_plus_waiting_and_frees_on_drop() {
        let q = GenerationQueue::new(1, 1);
        let a = q.enter().expect("first");
        let b = q.enter().expect("second waits");
        assert!(q.enter().is_none(), "third is refused");
        let running = a.start().await.expect("a slot");
        assert_eq!(q.waiting(), 1);
        drop(running);
        drop(b);
        assert!(q.enter().is_some());
    }
}
