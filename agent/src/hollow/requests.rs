//! Every request the hollow nodes make goes through [`Api`]: at most a fixed
//! number in flight at once (so 1,000 nodes do not swamp the master), each retried
//! with exponential backoff and jitter when the failure is one that may pass —
//! a connection error, 429, 5xx or a 409 `Conflict`. Connections are reused by
//! the client (HTTP/2 when the server offers it).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use api::client::{ApiError, Client, ClientError, Method, MERGE_PATCH};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Semaphore;

/// How many times a request is tried before the caller gets the error.
#[derive(Clone, Copy, Debug)]
pub struct Attempts(pub u32);

/// The client, shared by all hollow nodes of the process, and a request limit.
/// Clones share the limit; two `Api`s over one client have separate limits.
#[derive(Clone)]
pub struct Api {
    client: Client,
    permits: Arc<Semaphore>,
}

/// The delay before retry number `attempt` (1 for the first retry): 100 ms doubling
/// up to 5 s, then a random part of up to half of it added.
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base = 100u64.saturating_mul(1 << attempt.saturating_sub(1).min(6));
    let base = base.min(5_000);
    Duration::from_millis(base + (base as f64 * 0.5 * jitter.clamp(0.0, 1.0)) as u64)
}

/// True for failures worth another try.
pub fn retryable(err: &ClientError) -> bool {
    match err {
        ClientError::Api(e) => {
            e.code == 429 || e.code >= 500 || (e.code == 409 && e.reason() == Some("Conflict"))
        }
        ClientError::Request { .. } | ClientError::Body { .. } => true,
        _ => false,
    }
}

/// True when the server said the object does not exist.
pub fn not_found(err: &ClientError) -> bool {
    err.code() == Some(404)
}

/// True when the server said the object exists already.
pub fn already_exists(err: &ClientError) -> bool {
    matches!(err, ClientError::Api(e) if e.code == 409 && e.reason() == Some("AlreadyExists"))
}

impl Api {
    pub fn new(client: Client, max_in_flight: usize) -> Api {
        Api {
            client,
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
        }
    }

    /// The client itself, for watches (which hold no permit: they stay open).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `call` holding a permit, retrying retryable failures up to `attempts`.
    async fn retry<T, F, Fut>(&self, attempts: Attempts, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = {
                // The semaphore is never closed, so acquiring only fails if it were.
                let _permit = self.permits.acquire().await;
                call(self.client.clone()).await
            };
            match result {
                Err(e) if attempt < attempts.0 && retryable(&e) => {
                    tracing::debug!(error = %crate::error_chain(&e), attempt, "retrying");
                    tokio::time::sleep(backoff(attempt, rand::random::<f64>())).await;
                }
                other => return other,
            }
        }
    }

    pub async fn get(&self, path: &str, attempts: Attempts) -> Result<Value, ClientError> {
        self.retry(attempts, |c| async move { c.get(path).await })
            .await
    }

    /// `GET path` decoded straight into `T` (no intermediate JSON tree).
    pub async fn get_as<T: DeserializeOwned>(
        &self,
        path: &str,
        attempts: Attempts,
    ) -> Result<T, ClientError> {
        self.retry(attempts, |c| async move {
            let (status, body) = c.request(Method::GET, path, None).await?;
            if !status.is_success() {
                return Err(api_error(status.as_u16(), &body));
            }
            serde_json::from_slice(&body).map_err(|source| ClientError::Json {
                method: Method::GET,
                path: path.to_string(),
                source,
            })
        })
        .await
    }

    pub async fn create(
        &self,
        path: &str,
        object: &Value,
        attempts: Attempts,
    ) -> Result<Value, ClientError> {
        self.retry(attempts, |c| async move { c.create(path, object).await })
            .await
    }

    /// A JSON merge patch.
    pub async fn merge_patch(
        &self,
        path: &str,
        patch: &Value,
        attempts: Attempts,
    ) -> Result<Value, ClientError> {
        self.retry(attempts, |c| async move {
            c.patch(path, MERGE_PATCH, patch).await
        })
        .await
    }

    /// `DELETE path` with a `DeleteOptions` body; a 404 is an error for the caller
    /// to judge.
    pub async fn delete_with(
        &self,
        path: &str,
        options: &Value,
        attempts: Attempts,
    ) -> Result<(), ClientError> {
        self.retry(attempts, |c| async move {
            let (status, body) = c.request(Method::DELETE, path, Some(options)).await?;
            if status.is_success() {
                return Ok(());
            }
            Err(api_error(status.as_u16(), &body))
        })
        .await
    }
}

/// The error for a non-2xx answer, carrying the server's `Status`.
fn api_error(code: u16, body: &[u8]) -> ClientError {
    let status = serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    ClientError::Api(ApiError { code, status })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn api_err(code: u16, reason: &str) -> ClientError {
        ClientError::Api(ApiError {
            code,
            status: json!({"kind": "Status", "reason": reason, "code": code}),
        })
    }

    #[test]
    fn backoff_doubles_up_to_five_seconds_plus_jitter() {
        assert_eq!(backoff(1, 0.0), Duration::from_millis(100));
        assert_eq!(backoff(2, 0.0), Duration::from_millis(200));
        assert_eq!(backoff(4, 0.0), Duration::from_millis(800));
        assert_eq!(backoff(30, 0.0), Duration::from_secs(5));
        assert_eq!(backoff(1, 1.0), Duration::from_millis(150));
        assert_eq!(backoff(30, 1.0), Duration::from_millis(7_500));
    }

    #[test]
    fn only_passing_failures_are_retried() {
        assert!(retryable(&api_err(409, "Conflict")));
        assert!(retryable(&api_err(503, "ServiceUnavailable")));
        assert!(retryable(&api_err(429, "TooManyRequests")));
        assert!(!retryable(&api_err(409, "AlreadyExists")));
        assert!(!retryable(&api_err(404, "NotFound")));
        assert!(!retryable(&api_err(422, "Invalid")));
        assert!(already_exists(&api_err(409, "AlreadyExists")));
        assert!(not_found(&api_err(404, "NotFound")));
    }
}
