//! Asking a gatekeeper that is still following the chain: it refuses (403, 409 or
//! 503) until it has seen the block a step just sent, so the request is retried for a
//! bounded time.

use medrec_gatekeeper::client::ClientError;
use std::{future::Future, time::Duration};

/// How often a gatekeeper that is catching up is asked again.
pub const PAUSE: Duration = Duration::from_millis(200);
/// How long a gatekeeper may take to catch up before its refusal counts.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Retries `f` while the gatekeeper refuses because it has not followed the chain far
/// enough yet (403, 409 or 503), every `pause` for at most `patience`; any other error,
/// or the refusal once patience runs out, is returned.
///
/// # Errors
/// The last error of `f`.
pub async fn until_caught_up<T, F, Fut>(
    pause: Duration,
    patience: Duration,
    mut f: F,
) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match f().await {
            Err(ClientError::Refused { status: 403 | 409 | 503, .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(pause).await;
            }
            other => return other,
        }
    }
}
