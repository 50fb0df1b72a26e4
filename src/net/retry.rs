//! When a failed HTTP call is tried again, and after how long: the one retry policy of
//! the LLM providers and the platforms.
//!
//! - Retried: rate limiting (429) and server errors (5xx), and every transport failure
//!   except a request that cannot be built. Callers may add statuses their service
//!   documents as transient (the LLM providers add 408 and 409) and veto others.
//! - Delay: the server's `retry-after-ms` / `retry-after` (seconds, fractions allowed, or
//!   an HTTP date), capped at [`MAX_RETRY_AFTER`]; otherwise `min(base·2^n, max)` with up
//!   to 25 % jitter taken off, so callers that failed together do not retry together.
//! - Limit: `max_retries` retries after the first attempt.
//! - "Find before re-post": [`run_with_hook`] lets the caller look, before each new
//!   attempt, for what an attempt whose answer was lost may already have done.

use std::future::Future;
use std::time::Duration;

use reqwest::header::HeaderMap;

/// First backoff step in production.
pub const BASE_DELAY: Duration = Duration::from_millis(500);
/// Longest computed backoff step.
pub const MAX_DELAY: Duration = Duration::from_secs(8);
/// A server-provided delay is never waited longer than this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First computed backoff step (tests use a few milliseconds).
    pub base_delay: Duration,
    /// Longest computed backoff step.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// `max_retries` retries with the production backoff.
    pub fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            base_delay: BASE_DELAY,
            max_delay: MAX_DELAY,
        }
    }

    /// The same number of retries with millisecond backoff, for tests.
    #[must_use]
    pub fn fast(max_retries: u32) -> Self {
        Self {
            max_retries,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        }
    }

    /// The most attempts a call gets, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_retries.saturating_add(1)
    }

    /// Backoff before retry number `retry` (0-based) when the server named no delay.
    pub fn backoff(&self, retry: u32) -> Duration {
        let step = self.base_delay.saturating_mul(2u32.saturating_pow(retry.min(20)));
        let capped = step.min(self.max_delay);
        capped.mul_f64(1.0 - 0.25 * fastrand::f64())
    }

    /// The delay before retry number `retry`, preferring the server's.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        retry_after.map_or_else(|| self.backoff(retry), |d| d.min(MAX_RETRY_AFTER))
    }
}

/// Rate limiting and server errors: another attempt may get through.
pub fn status_is_transient(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// A transport failure (refused, reset, timed out, cut off) may pass on the next attempt;
/// a request reqwest cannot build (a malformed URL or header) never will.
pub fn transport_is_transient(err: &reqwest::Error) -> bool {
    !err.is_builder()
}

/// The delay the server asked for: `retry-after-ms`, else `retry-after` in seconds (float
/// allowed) or as an HTTP date. Capped at [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let delay = if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        secs(ms / 1000.0)
    } else {
        let value = header("retry-after")?;
        match value.parse::<f64>() {
            Ok(s) => secs(s),
            Err(_) => until(value),
        }
    }?;
    Some(delay.min(MAX_RETRY_AFTER))
}

fn secs(value: f64) -> Option<Duration> {
    (value.is_finite() && value >= 0.0).then(|| Duration::from_secs_f64(value.min(MAX_RETRY_AFTER.as_secs_f64())))
}

/// The time left until an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`); a past date is now.
fn until(http_date: &str) -> Option<Duration> {
    let at = chrono::DateTime::parse_from_rfc2822(http_date).ok()?;
    let ms = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// Why an attempt is worth repeating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// The delay the server asked for, if it named one.
    pub after: Option<Duration>,
    /// What went wrong, for the log.
    pub reason: String,
}

/// The call being retried, for the log.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// Who is called (`anthropic`, `gitlab`).
    pub service: &'a str,
    /// What is called (`LLM call`, `create merge request`).
    pub operation: &'a str,
    /// A retry the user waits through (an LLM call) is a warning; the platforms retry
    /// quietly (a debug line).
    pub warn: bool,
}

/// How [`run_with_hook`] ended.
#[derive(Debug)]
pub enum Ended<T, S> {
    /// The last attempt's outcome — a success, a final failure, or a transient one with
    /// no attempts left — and how many attempts were made.
    Last { outcome: T, attempts: u32 },
    /// The hook stopped the loop with its own result before a new attempt.
    Hooked(S),
}

/// Runs `attempt` until `transient` finds nothing to retry in its outcome or the policy's
/// attempts are used up; returns the last outcome and the number of attempts.
pub async fn run<T, A, AFut>(
    policy: &RetryPolicy,
    call: Call<'_>,
    attempt: A,
    transient: impl Fn(&T) -> Option<Retry>,
) -> (T, u32)
where
    A: FnMut() -> AFut,
    AFut: Future<Output = T>,
{
    let no_hook = || std::future::ready(None::<std::convert::Infallible>);
    match run_with_hook(policy, call, attempt, transient, no_hook).await {
        Ended::Last { outcome, attempts } => (outcome, attempts),
        Ended::Hooked(never) => match never {},
    }
}

/// [`run`], with `before_retry` called after each backoff and before the next attempt:
/// when it returns a value the loop stops with it ([`Ended::Hooked`]). A create call uses
/// it to look for the object an attempt whose answer was lost may have created, so it is
/// never created twice.
pub async fn run_with_hook<T, S, A, AFut, H, HFut>(
    policy: &RetryPolicy,
    call: Call<'_>,
    mut attempt: A,
    transient: impl Fn(&T) -> Option<Retry>,
    mut before_retry: H,
) -> Ended<T, S>
where
    A: FnMut() -> AFut,
    AFut: Future<Output = T>,
    H: FnMut() -> HFut,
    HFut: Future<Output = Option<S>>,
{
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let outcome = attempt().await;
        let retry = match transient(&outcome) {
            Some(retry) if attempts < policy.max_attempts() => retry,
            _ => return Ended::Last { outcome, attempts },
        };
        let delay = policy.delay(attempts - 1, retry.after);
        log_retry(call, attempts, delay, &retry.reason);
        tokio::time::sleep(delay).await;
        if let Some(stop) = before_retry().await {
            return Ended::Hooked(stop);
        }
    }
}

fn log_retry(call: Call<'_>, attempt: u32, delay: Duration, reason: &str) {
    let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    let Call { service, operation, .. } = call;
    if call.warn {
        tracing::warn!(service, attempt, delay_ms, "{operation} failed, retrying: {reason}");
    } else {
        tracing::debug!(service, attempt, delay_ms, "{operation} failed, retrying: {reason}");
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    use crate::net::test_headers as headers;

    const CALL: Call<'static> = Call {
        service: "test",
        operation: "call",
        warn: false,
    };

    #[test]
    fn retry_after_in_seconds_and_milliseconds() {
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "10")])),
            Some(Duration::from_millis(10))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "1.5")])),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", " 2 ")])),
            Some(Duration::from_secs(2))
        );
        // `retry-after-ms` is the more precise of the two and wins.
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "20"), ("retry-after", "5")])),
            Some(Duration::from_millis(20))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "NaN")])), None);
        assert_eq!(retry_after(&headers(&[])), None);
    }

    #[test]
    fn retry_after_as_an_http_date() {
        let past = retry_after(&headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]));
        assert_eq!(past, Some(Duration::ZERO));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let delay = retry_after(&headers(&[("retry-after", &soon)])).unwrap();
        assert!(
            delay > Duration::from_secs(27) && delay <= Duration::from_secs(30),
            "{delay:?}"
        );
    }

    #[test]
    fn retry_after_is_capped_in_every_form() {
        let late = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc2822();
        for value in [
            ("retry-after", "3600"),
            ("retry-after-ms", "3600000"),
            ("retry-after", late.as_str()),
        ] {
            assert_eq!(retry_after(&headers(&[value])), Some(MAX_RETRY_AFTER), "{value:?}");
        }
        assert_eq!(
            RetryPolicy::new(1).delay(0, Some(Duration::from_secs(600))),
            MAX_RETRY_AFTER
        );
    }

    #[test]
    fn transient_statuses() {
        for s in [429, 500, 502, 503, 504, 529, 599] {
            assert!(status_is_transient(s), "{s}");
        }
        for s in [200, 201, 301, 400, 401, 403, 404, 408, 409, 413, 422, 600] {
            assert!(!status_is_transient(s), "{s}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped_with_jitter() {
        let p = RetryPolicy::new(5);
        for _ in 0..50 {
            let d0 = p.backoff(0);
            assert!(
                d0 <= Duration::from_millis(500) && d0 >= Duration::from_millis(375),
                "{d0:?}"
            );
            let d3 = p.backoff(3);
            assert!(d3 <= Duration::from_secs(4) && d3 >= Duration::from_secs(3), "{d3:?}");
            let d9 = p.backoff(9);
            assert!(d9 <= MAX_DELAY && d9 >= Duration::from_secs(6), "{d9:?}");
            assert!(p.backoff(u32::MAX) <= MAX_DELAY);
        }
        assert_eq!(p.max_attempts(), 6);
    }

    #[tokio::test]
    async fn the_loop_stops_at_the_limit_and_on_final_outcomes() {
        let policy = RetryPolicy::fast(2);
        let calls = Cell::new(0);
        let transient = |outcome: &u16| {
            status_is_transient(*outcome).then(|| Retry {
                after: None,
                reason: format!("HTTP {outcome}"),
            })
        };
        let (last, attempts) = run(
            &policy,
            CALL,
            || {
                calls.set(calls.get() + 1);
                async { 503u16 }
            },
            transient,
        )
        .await;
        assert_eq!((last, attempts, calls.get()), (503, 3, 3));

        calls.set(0);
        let (last, attempts) = run(
            &policy,
            CALL,
            || {
                calls.set(calls.get() + 1);
                async { 404u16 }
            },
            transient,
        )
        .await;
        assert_eq!((last, attempts, calls.get()), (404, 1, 1));

        calls.set(0);
        let (last, attempts) = run(
            &policy,
            CALL,
            || {
                calls.set(calls.get() + 1);
                let status = if calls.get() < 2 { 429u16 } else { 200 };
                async move { status }
            },
            transient,
        )
        .await;
        assert_eq!((last, attempts), (200, 2));
    }

    #[tokio::test]
    async fn the_hook_runs_before_each_retry_and_can_end_the_loop() {
        let policy = RetryPolicy::fast(3);
        let posts = Cell::new(0);
        let finds = Cell::new(0);
        let ended = run_with_hook(
            &policy,
            CALL,
            || {
                posts.set(posts.get() + 1);
                async { 502u16 }
            },
            |s: &u16| {
                status_is_transient(*s).then(|| Retry {
                    after: None,
                    reason: String::new(),
                })
            },
            || {
                finds.set(finds.get() + 1);
                // The second look finds what an earlier attempt created.
                let found = (finds.get() == 2).then_some("!42");
                async move { found }
            },
        )
        .await;
        assert!(matches!(ended, Ended::Hooked("!42")), "{ended:?}");
        assert_eq!((posts.get(), finds.get()), (2, 2));

        // Nothing found: every attempt is made, the hook never runs before the first.
        posts.set(0);
        finds.set(0);
        let ended = run_with_hook(
            &policy,
            CALL,
            || {
                posts.set(posts.get() + 1);
                async { 500u16 }
            },
            |s: &u16| {
                status_is_transient(*s).then(|| Retry {
                    after: None,
                    reason: String::new(),
                })
            },
            || {
                finds.set(finds.get() + 1);
                async { None::<()> }
            },
        )
        .await;
        assert!(matches!(
            ended,
            Ended::Last {
                outcome: 500,
                attempts: 4
            }
        ));
        assert_eq!((posts.get(), finds.get()), (4, 3));
    }
}
