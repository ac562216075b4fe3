//! Two exports of one blocking operation (a sleep standing in for a storage
//! commit): `work` blocks its caller; `work_async` is a UniFFI async export
//! that runs the same sleep on a Rust thread and completes a future. The
//! counters tell whether an operation whose caller was cancelled still ran
//! to its end. `work_inline` shows what an async export that does its work
//! inside `poll` costs the caller's event loop.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

uniffi::setup_scaffolding!();

static STARTED: AtomicU32 = AtomicU32::new(0);
static FINISHED: AtomicU32 = AtomicU32::new(0);

fn run(millis: u32) -> u32 {
    STARTED.fetch_add(1, Ordering::SeqCst);
    if millis > 0 {
        std::thread::sleep(Duration::from_millis(millis.into()));
    }
    FINISHED.fetch_add(1, Ordering::SeqCst);
    millis
}

/// Blocks for `millis` ms and returns it.
#[uniffi::export]
pub fn work(millis: u32) -> u32 {
    run(millis)
}

/// Returns `millis` at once: the per-call cost of an async export.
#[uniffi::export]
pub async fn ready_async(millis: u32) -> u32 {
    millis
}

/// Sleeps `millis` ms on a new Rust thread; the returned future completes then.
#[uniffi::export]
pub async fn work_async(millis: u32) -> u32 {
    Spawned::new(move || run(millis)).await
}

/// Runs the blocking sleep inside the future's first poll (on the thread
/// that polls it: the caller's event loop).
#[uniffi::export]
pub async fn work_inline(millis: u32) -> u32 {
    run(millis)
}

/// How many operations started and finished so far.
#[uniffi::export]
pub fn counters() -> Vec<u32> {
    vec![
        STARTED.load(Ordering::SeqCst),
        FINISHED.load(Ordering::SeqCst),
    ]
}

/// A future for a closure run on its own thread.
struct Spawned {
    shared: Arc<Mutex<(Option<u32>, Option<Waker>)>>,
}

impl Spawned {
    fn new(f: impl FnOnce() -> u32 + Send + 'static) -> Self {
        let shared = Arc::new(Mutex::new((None, None::<Waker>)));
        let theirs = shared.clone();
        std::thread::spawn(move || {
            let value = f();
            let mut slot = theirs.lock().unwrap();
            slot.0 = Some(value);
            if let Some(waker) = slot.1.take() {
                waker.wake();
            }
        });
        Self { shared }
    }
}

impl Future for Spawned {
    type Output = u32;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        let mut slot = self.shared.lock().unwrap();
        match slot.0 {
            Some(value) => Poll::Ready(value),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
