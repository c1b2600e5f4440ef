//! How long to wait before the next attempt: the server's `Retry-After` when it gives one,
//! clamped to `max_retry_after`; otherwise exponential backoff with full jitter (a uniformly
//! random wait between zero and the exponential step), so that clients that failed together
//! do not come back together.

use std::time::{Duration, SystemTime};

/// The first backoff step; each further attempt doubles it, up to the cap.
pub(crate) const BACKOFF_BASE: Duration = Duration::from_millis(250);

/// The wait before attempt `attempt + 1` (attempt 0 failed first): uniform in
/// `[0, min(cap, BACKOFF_BASE * 2^attempt)]`.
pub(crate) fn backoff(attempt: u32, cap: Duration) -> Duration {
    let step = BACKOFF_BASE
        .checked_mul(1u32 << attempt.min(20))
        .unwrap_or(cap)
        .min(cap);
    let millis = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=millis))
}

/// A `Retry-After` value (delta-seconds, or an HTTP date) as a wait from `now`, at most `max`.
/// `None` when it is neither: the caller backs off instead.
pub(crate) fn retry_after(value: &str, now: SystemTime, max: Duration) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        let at = SystemTime::from(date);
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_within_the_exponential_step_and_the_cap() {
        let cap = Duration::from_secs(30);
        for attempt in 0..40 {
            let bound = (BACKOFF_BASE * (1u32 << attempt.min(20))).min(cap);
            for _ in 0..200 {
                assert!(backoff(attempt, cap) <= bound, "attempt {attempt}");
            }
        }
    }

    #[test]
    fn backoff_is_jittered_over_the_whole_range() {
        let waits: Vec<Duration> = (0..2000)
            .map(|_| backoff(4, Duration::from_secs(30)))
            .collect();
        let step = BACKOFF_BASE * 16;
        assert!(waits.iter().any(|w| *w < step / 4), "some short waits");
        assert!(waits.iter().any(|w| *w > step * 3 / 4), "some long waits");
        assert!(waits.iter().all(|w| *w <= step));
    }

    #[test]
    fn retry_after_is_read_and_clamped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let max = Duration::from_secs(30);
        assert_eq!(retry_after("5", now, max), Some(Duration::from_secs(5)));
        assert_eq!(retry_after(" 0 ", now, max), Some(Duration::ZERO));
        assert_eq!(retry_after("3600", now, max), Some(max), "clamped");
        // 2015-10-21T07:28:00Z is `now`; ten seconds later:
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now, max),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now, max),
            Some(Duration::ZERO),
            "a past date means now"
        );
        assert_eq!(retry_after("-1", now, max), None);
        assert_eq!(retry_after("soon", now, max), None);
    }
}
