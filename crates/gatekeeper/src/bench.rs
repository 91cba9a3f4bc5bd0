//! A load generator for the gatekeeper's HTTP API, for `medrec bench gatekeeper`.
//!
//! [`run_load`] opens a number of keep-alive HTTP/1.1 connections (one hyper client
//! connection per socket, no pool in between), and on each sends `GET` requests one
//! after the other, as fast as the answers come back (a closed loop), for a warm-up and
//! then a fixed measured window. Every request of the window is timed from just before
//! it is written to the last byte of its answer; every answer must be `200 OK`, and
//! anything else (another status, a broken connection) counts as an error. The
//! requests themselves come from a [`RequestSource`] per connection, so the same
//! generator drives bearer tokens, per-request signatures or no credentials at all.
//!
//! [`ProcessStats`] reads what the process used (resident memory, CPU time per thread
//! group) from `/proc`, so a report can say whether the server or the load generator
//! ran out of CPU.

use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

/// One request to send: its path and query, and its extra headers (credentials).
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// Path and query, e.g. `/fhir/Observation/o-1-7`.
    pub path: String,
    /// Headers sent besides `Host`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Where one connection's requests come from; `None` when it has no more to send (the
/// connection then stops early and the report counts it as exhausted).
pub type RequestSource = Box<dyn FnMut() -> Option<RequestSpec> + Send>;

/// How long to load, and with how many connections.
#[derive(Debug, Clone, Copy)]
pub struct LoadConfig {
    /// Time spent sending requests before the measured window (not counted).
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
}

/// What a load run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    /// Connections used.
    pub connections: usize,
    /// Requests started in the measured window and answered.
    pub requests: u64,
    /// The measured window, seconds.
    pub seconds: f64,
    /// `requests / seconds`.
    pub per_sec: f64,
    /// Latency percentiles and maximum, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// The slowest request.
    pub max_ms: f64,
    /// Mean size of an answer's body, bytes.
    pub mean_body_bytes: f64,
    /// Answers that were not `200 OK` (warm-up included), and broken connections.
    pub errors: u64,
    /// The statuses of those answers, and `"transport"` for broken connections.
    pub error_kinds: BTreeMap<String, u64>,
    /// Connections whose source ran out of requests before the window ended.
    pub exhausted_connections: usize,
    /// Requests sent in all, warm-up included.
    pub sent_total: u64,
}

/// Why the load could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The server could not be reached.
    #[error("cannot open a connection to the gatekeeper at {addr}: {source}")]
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP/1.1 handshake failed.
    #[error("the HTTP/1.1 handshake with {addr} failed: {source}")]
    Handshake {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: hyper::Error,
    },
    /// No connections were asked for, or no window.
    #[error("the load needs at least one connection and a measured window longer than zero")]
    Empty,
}

/// What one connection saw.
#[derive(Debug, Default)]
struct ConnStats {
    latencies_us: Vec<u32>,
    body_bytes: u64,
    errors: BTreeMap<String, u64>,
    exhausted: bool,
    sent: u64,
}

/// Loads the server at `addr` with one connection per source, as [`LoadConfig`] says.
///
/// Runs the connections as tasks on the current tokio runtime (give the load generator
/// a runtime of its own to tell its CPU from the server's).
pub async fn run_load(
    addr: SocketAddr,
    config: LoadConfig,
    sources: Vec<RequestSource>,
) -> Result<LoadReport, LoadError> {
    if sources.is_empty() || config.duration.is_zero() {
        return Err(LoadError::Empty);
    }
    let connections = sources.len();
    let host = HeaderValue::from_str(&addr.to_string()).expect("an address is a valid Host");
    // Connect everything first, so that the window measures requests only.
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| LoadError::Connect { addr, source })?;
        stream.set_nodelay(true).map_err(|source| LoadError::Connect { addr, source })?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| LoadError::Handshake { addr, source })?;
        tokio::spawn(connection);
        senders.push(sender);
    }
    let start = Instant::now();
    let measured_from = start + config.warmup;
    let end = measured_from + config.duration;
    let tasks: Vec<_> = senders
        .into_iter()
        .zip(sources)
        .map(|(sender, source)| {
            tokio::spawn(connection_loop(sender, source, host.clone(), measured_from, end))
        })
        .collect();
    let mut all = ConnStats::default();
    let mut exhausted = 0;
    for task in tasks {
        let stats = task.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        all.latencies_us.extend_from_slice(&stats.latencies_us);
        all.body_bytes += stats.body_bytes;
        all.sent += stats.sent;
        exhausted += usize::from(stats.exhausted);
        for (k, v) in stats.errors {
            *all.errors.entry(k).or_default() += v;
        }
    }
    let mut report = report(connections, config.duration, all);
    report.exhausted_connections = exhausted;
    Ok(report)
}

fn report(connections: usize, window: Duration, mut all: ConnStats) -> LoadReport {
    all.latencies_us.sort_unstable();
    let n = all.latencies_us.len();
    let pct = |q: f64| -> f64 {
        if n == 0 {
            return 0.0;
        }
        // Nearest rank: the smallest latency with at least q of the samples at or below.
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        f64::from(all.latencies_us[rank - 1]) / 1000.0
    };
    let seconds = window.as_secs_f64();
    let errors = all.errors.values().sum();
    LoadReport {
        connections,
        requests: n as u64,
        seconds,
        per_sec: n as f64 / seconds,
        p50_ms: pct(0.50),
        p90_ms: pct(0.90),
        p99_ms: pct(0.99),
        p999_ms: pct(0.999),
        max_ms: pct(1.0),
        mean_body_bytes: if n == 0 { 0.0 } else { all.body_bytes as f64 / n as f64 },
        errors,
        error_kinds: all.errors,
        exhausted_connections: 0,
        sent_total: all.sent,
    }
}

/// Sends requests on one connection until `end`; times those started from `measured_from`.
async fn connection_loop(
    mut sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    mut source: RequestSource,
    host: HeaderValue,
    measured_from: Instant,
    end: Instant,
) -> ConnStats {
    let mut stats = ConnStats::default();
    loop {
        if Instant::now() >= end {
            break;
        }
        let Some(spec) = source() else {
            stats.exhausted = true;
            break;
        };
        let mut request = Request::get(spec.path.as_str())
            .body(Empty::<Bytes>::new())
            .expect("a path from the source is a valid URI");
        let headers = request.headers_mut();
        headers.insert(header::HOST, host.clone());
        for (name, value) in spec.headers {
            headers.insert(name, value);
        }
        if sender.ready().await.is_err() {
            *stats.errors.entry("transport".to_owned()).or_default() += 1;
            break;
        }
        let started = Instant::now();
        stats.sent += 1;
        let answer = match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                response.into_body().collect().await.map(|b| (status, b.to_bytes().len()))
            }
            Err(e) => Err(e),
        };
        let took = started.elapsed();
        let Ok((status, len)) = answer else {
            *stats.errors.entry("transport".to_owned()).or_default() += 1;
            break;
        };
        if status != StatusCode::OK {
            *stats.errors.entry(status.as_u16().to_string()).or_default() += 1;
        }
        if started >= measured_from && started < end {
            stats.latencies_us.push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
            stats.body_bytes += len as u64;
        }
    }
    stats
}

/// What the process used, from `/proc/self` (Linux; zeros elsewhere).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProcessStats {
    /// Resident memory now, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// The most resident memory so far, KiB (`VmHWM`).
    pub peak_rss_kib: u64,
    /// CPU seconds (user + system) per thread name, summed over threads alive now.
    pub cpu_seconds_by_thread: BTreeMap<String, f64>,
}

impl ProcessStats {
    /// Reads them now.
    pub fn now() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Self {
            rss_kib: field("VmRSS:"),
            peak_rss_kib: field("VmHWM:"),
            cpu_seconds_by_thread: thread_cpu(),
        }
    }

    /// CPU seconds per thread name spent between `before` and `self`.
    pub fn cpu_since(&self, before: &Self) -> BTreeMap<String, f64> {
        self.cpu_seconds_by_thread
            .iter()
            .map(|(name, s)| {
                let was = before.cpu_seconds_by_thread.get(name).copied().unwrap_or(0.0);
                (name.clone(), ((s - was) * 1000.0).round() / 1000.0)
            })
            .filter(|(_, s)| *s > 0.0)
            .collect()
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

fn thread_cpu() -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return out };
    for task in tasks.flatten() {
        let dir = task.path();
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else { continue };
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        // The fields after the command name, which is in parentheses and may hold spaces.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let secs = (ticks(11) + ticks(12)) as f64 / USER_HZ;
        *out.entry(name.trim().to_owned()).or_insert(0.0) += secs;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let stats = ConnStats {
            latencies_us: (1..=1000).rev().collect(),
            body_bytes: 2000,
            ..ConnStats::default()
        };
        let r = report(1, Duration::from_secs(2), stats);
        assert_eq!((r.requests, r.per_sec), (1000, 500.0));
        assert_eq!((r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms), (0.5, 0.9, 0.99, 1.0));
        assert_eq!(r.mean_body_bytes, 2.0);
    }

    #[test]
    fn this_process_has_memory_and_threads() {
        let s = ProcessStats::now();
        assert!(s.rss_kib > 0 && s.peak_rss_kib >= s.rss_kib, "{s:?}");
        assert!(!s.cpu_seconds_by_thread.is_empty());
    }
}

/// One request on a connection of its own: the status, headers and body of the answer.
async fn send_once(
    addr: SocketAddr,
    request: Request<http_body_util::Full<Bytes>>,
) -> Result<(StatusCode, axum::http::HeaderMap, Bytes), SmartLaunchError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| SmartLaunchError(format!("cannot connect to {addr}: {e}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| SmartLaunchError(format!("HTTP/1.1 handshake with {addr}: {e}")))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| SmartLaunchError(format!("request to {addr}: {e}")))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| SmartLaunchError(format!("answer from {addr}: {e}")))?
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// Why a SMART launch of the benchmark did not end with an access token.
#[derive(Debug, thiserror::Error)]
#[error("the SMART launch failed: {0}")]
pub struct SmartLaunchError(String);

/// A SMART app's standalone launch against the gatekeeper at `addr`, over HTTP as a
/// browser and an app would do it: the consent page (`GET /authorize`), the sign-in
/// message for `address` (`GET /authorize/message`) signed by `sign` (EIP-191
/// `personal_sign`, the signature in hex), the answer (`POST /authorize`, a code in the
/// redirect) and the exchange with PKCE (`POST /token`). The access token, for
/// `Authorization: Bearer …`.
pub async fn smart_launch(
    addr: SocketAddr,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    address: alloy::primitives::Address,
    sign: &(dyn Fn(&[u8]) -> Option<String> + Sync),
) -> Result<String, SmartLaunchError> {
    use crate::smart::{AuthorizeRequest, pkce};
    let fail = |what: &str, status: StatusCode, body: &[u8]| {
        SmartLaunchError(format!("{what}: {status} {}", String::from_utf8_lossy(body)))
    };
    let host = addr.to_string();
    let verifier = alloy::hex::encode(
        crate::auth::random::bytes::<32>().map_err(|e| SmartLaunchError(e.to_string()))?,
    );
    let r = AuthorizeRequest {
        response_type: Some("code".into()),
        client_id: Some(client_id.into()),
        redirect_uri: Some(redirect_uri.into()),
        scope: Some(scope.into()),
        state: Some("bench".into()),
        aud: Some(format!("http://{host}/fhir")),
        code_challenge: Some(pkce::s256(&verifier)),
        code_challenge_method: Some("S256".into()),
        nonce: None,
    };
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("response_type", &r.response_type),
        ("client_id", &r.client_id),
        ("redirect_uri", &r.redirect_uri),
        ("scope", &r.scope),
        ("state", &r.state),
        ("aud", &r.aud),
        ("code_challenge", &r.code_challenge),
        ("code_challenge_method", &r.code_challenge_method),
    ] {
        if let Some(v) = v {
            form.append_pair(k, v);
        }
    }
    let query = form.finish();
    let get = |path: String| {
        Request::get(path)
            .header(header::HOST, host.as_str())
            .body(http_body_util::Full::new(Bytes::new()))
            .map_err(|e| SmartLaunchError(e.to_string()))
    };
    let post = |path: &str, body: String| {
        Request::post(path)
            .header(header::HOST, host.as_str())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(Bytes::from(body)))
            .map_err(|e| SmartLaunchError(e.to_string()))
    };
    let (status, _, body) = send_once(addr, get(format!("/authorize?{query}"))?).await?;
    if status != StatusCode::OK {
        return Err(fail("the consent page", status, &body));
    }
    let path = format!("/authorize/message?address={address}&request_id={}", r.request_id());
    let (status, _, message) = send_once(addr, get(path)?).await?;
    if status != StatusCode::OK {
        return Err(fail("the sign-in message", status, &message));
    }
    let signature = sign(&message)
        .ok_or_else(|| SmartLaunchError("the sign-in message was not signed".into()))?;
    let message = String::from_utf8_lossy(&message).into_owned();
    let answer = form_urlencoded::Serializer::new(query.clone())
        .append_pair("message", &message)
        .append_pair("signature", &signature)
        .finish();
    let (status, headers, body) = send_once(addr, post("/authorize", answer)?).await?;
    let code = headers
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| l.split_once('?'))
        .and_then(|(_, q)| {
            form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "code").map(|(_, v)| v)
        })
        .ok_or_else(|| fail("no code in the redirect", status, &body))?
        .into_owned();
    let exchange = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_verifier", &verifier)
        .append_pair("client_id", client_id)
        .finish();
    let (status, _, body) = send_once(addr, post("/token", exchange)?).await?;
    let token: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    match token["access_token"].as_str() {
        Some(t) if status == StatusCode::OK => Ok(t.to_owned()),
        _ => Err(fail("the token exchange", status, &body)),
    }
}
