//! Polling instead of sleeping: [`wait_until`] retries a fallible probe at a fixed
//! interval until it succeeds or a deadline passes, and then returns the probe's last
//! error (which says what was still wrong).

use std::time::{Duration, Instant};

/// Calls `probe` at once and then every `interval` until it returns `Ok`, or until
/// `timeout` has passed; then returns the last `Err`. The probe always runs at least
/// once, and once more right at the deadline if the last try was earlier.
///
/// ```
/// use std::time::Duration;
/// let mut n = 0;
/// let r = testlab::wait_until(Duration::from_secs(1), Duration::from_millis(1), || {
///     n += 1;
///     if n < 3 { Err(format!("only {n}")) } else { Ok(n) }
/// });
/// assert_eq!(r, Ok(3));
/// ```
pub fn wait_until<T, E>(
    timeout: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let deadline = Instant::now() + timeout;
    loop {
        let err = match probe() {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(err);
        }
        std::thread::sleep(interval.min(deadline - now));
    }
}

/// The opposite of [`wait_until`]: calls `check` every `interval` for `duration` and
/// fails with the first `Err` (for "stays down", "is never installed" assertions).
pub fn holds_for<E>(
    duration: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Result<(), E>,
) -> Result<(), E> {
    let deadline = Instant::now() + duration;
    loop {
        check()?;
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        std::thread::sleep(interval.min(deadline - now));
    }
}

/// Polls `neighbor` every 50 ms until the session it reports is Established; on timeout
/// the error names `what` and the last state and error seen. Shared by the BIRD, GoBGP and
/// FRR helpers.
pub(crate) fn wait_established(
    what: &str,
    timeout: Duration,
    mut neighbor: impl FnMut() -> crate::Result<crate::route::Neighbor>,
) -> crate::Result<()> {
    wait_until(timeout, Duration::from_millis(50), || {
        let n = neighbor()?;
        if n.is_established() {
            Ok(())
        } else {
            Err(crate::Error::Timeout {
                what: what.to_string(),
                after: timeout,
                last: format!("{} {:?}", n.state, n.last_error),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_last_error_on_timeout() {
        let mut n = 0;
        let r: Result<(), String> =
            wait_until(Duration::from_millis(50), Duration::from_millis(5), || {
                n += 1;
                Err(format!("try {n}"))
            });
        let e = r.unwrap_err();
        assert_eq!(e, format!("try {n}"));
        assert!(n >= 2, "probed {n} times");
    }

    #[test]
    fn holds_for_fails_on_first_error() {
        let mut n = 0;
        let r = holds_for(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            if n < 4 { Ok(()) } else { Err(n) }
        });
        assert_eq!(r, Err(4));
        let ok: Result<(), ()> =
            holds_for(Duration::from_millis(10), Duration::from_millis(2), || {
                Ok(())
            });
        assert_eq!(ok, Ok(()));
    }

    #[test]
    fn zero_timeout_still_probes_once() {
        let r: Result<u8, ()> = wait_until(Duration::ZERO, Duration::from_secs(1), || Ok(7));
        assert_eq!(r, Ok(7));
    }
}
