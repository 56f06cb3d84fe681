//! Two helpers every task shares: a sleep whose deadline may be unset, and a lock that outlives a
//! panicked holder. It imports nothing of the crate, so any layer may use it.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Sleeps until `deadline`, or forever when there is none: the timer arm of a `select!` loop
/// that is off until something sets it.
pub async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Locks `m`, taking the data over from a holder that panicked. Every value guarded this way is
/// whole between statements (a queue, a slot, a counter), so a poisoned lock is no reason to
/// take the box down with it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_poisoned_by_a_panic_still_gives_its_data() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock();
            panic!("holder dies");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }

    #[tokio::test]
    async fn an_unset_deadline_never_fires_and_a_set_one_does() {
        let wait = std::time::Duration::from_millis(50);
        assert!(tokio::time::timeout(wait, sleep_until(None)).await.is_err());
        let at = tokio::time::Instant::now() + wait;
        sleep_until(Some(at)).await;
        assert!(tokio::time::Instant::now() >= at);
    }
}
