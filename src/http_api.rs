//! The HTTP serving both servers share: the Functions custom handler (`xdrsync serve`) and the
//! standalone server (`xdrsync run`) each build their own router and hand it to [`serve`], which
//! speaks HTTP/1.1 with a deadline for a request's head and one for its body, and stops
//! gracefully. It serves at most [`MAX_CONNECTIONS`] connections at once (others get a JSON 503
//! at once) with a bounded head buffer. Handlers read bodies through [`LimitedBody`] (size limit
//! and body deadline, with JSON answers), and the two public routes both servers answer live
//! here; the webhook checks its key from the headers before reading a body.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::usecase::webhook::{self, WebhookAnswer, WebhookCall, MAX_BODY_BYTES};
use crate::usecase::Ports;

/// How long a client has to send a request's head (from the moment the server waits for it, so
/// it also closes idle keep-alive connections), and then how long for the whole body.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The health route (`GET`).
pub const HEALTH_ROUTE: &str = "/api/health";
/// The webhook route (`POST`): `/api/` + the `SentinelWebhook` function.json `route`.
pub const WEBHOOK_ROUTE: &str = "/api/sentinel/incidents";
/// A body over its limit is still read (and dropped) up to this size before the 413, so the
/// client reads the answer: a server that closes with unread data makes the client's TCP stack
/// report a reset instead. Larger declared bodies are answered at once.
const DRAIN_CAP: u64 = 16 * 1024 * 1024;
/// At most this many connections are served at once; a client connecting beyond it gets
/// [`BUSY`] and is disconnected (a connection idle or stalled in its head is closed after
/// [`READ_TIMEOUT`], which frees its place). With [`MAX_HEAD_BUFFER`] this bounds what anonymous
/// clients can make the server hold, however many connect.
pub const MAX_CONNECTIONS: usize = 256;
/// The answer to a connection over [`MAX_CONNECTIONS`], written without waiting.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 72\r\n\r\n{\"error\":{\"code\":\"ServiceUnavailable\",\"message\":\"too many connections\"}}";
/// The most a connection buffers while reading a request's head (hyper's `max_buf_size`; its
/// default is about 400 KiB): a larger head is refused.
const MAX_HEAD_BUFFER: usize = 64 * 1024;
/// At most this many webhook bodies (each up to its limit) are read at once; a caller with the
/// key waits for a turn. Callers without it are answered from the headers and never get here.
const MAX_BODIES_IN_FLIGHT: usize = 16;
static BODY_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_BODIES_IN_FLIGHT);
/// Pause after a failed `accept` (out of file descriptors, say) before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, lets in-flight
/// requests finish and returns. A client that does not send a request's head within
/// `read_timeout` is disconnected; one that does not send the whole body within `read_timeout`
/// after the head gets a 408 from [`LimitedBody`] and is disconnected. Production passes
/// [`READ_TIMEOUT`]; tests pass less.
pub async fn serve<F>(listener: TcpListener, app: Router, read_timeout: Duration, shutdown: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(read_timeout).max_buf_size(MAX_HEAD_BUFFER);
    // Connection tasks watch `stop` and each hold a `done` receiver until they end.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error.message = %e, "could not accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Full: refuse at once rather than let clients pile up in the listen backlog.
            let _ = stream.try_write(BUSY);
            continue;
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let deadline = Instant::now() + read_timeout;
            app.clone().oneshot(req.map(|b| Body::new(DeadlineBody::new(b, deadline, read_timeout))))
        });
        let http = http.clone();
        let mut stop = stop_rx.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let conn = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let stopping = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = stopping => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error.message = %e, "connection ended with an error");
            }
            drop(slot);
            drop(done);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
}

/// The body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct ReadTimeout(Duration);

/// A request body that fails with [`ReadTimeout`] once `deadline` has passed.
struct DeadlineBody<B> {
    inner: B,
    deadline: Pin<Box<Sleep>>,
    after: Duration,
}

impl<B> DeadlineBody<B> {
    fn new(inner: B, deadline: Instant, after: Duration) -> Self {
        Self { inner, deadline: Box::pin(tokio::time::sleep_until(deadline)), after }
    }
}

impl<B> http_body::Body for DeadlineBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        // The deadline first: a client trickling bytes is cut off as surely as a silent one.
        if this.deadline.as_mut().poll(cx).is_ready() && !this.inner.is_end_stream() {
            return Poll::Ready(Some(Err(Box::new(ReadTimeout(this.after)))));
        }
        Pin::new(&mut this.inner).poll_frame(cx).map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body read whole: at most `MAX` bytes, before the body deadline. Over the limit it
/// answers the webhook's documented JSON 413, a stalled body a JSON 408, a broken one a JSON 400.
pub struct LimitedBody<const MAX: usize>(pub Bytes);

impl<S: Send + Sync, const MAX: usize> FromRequest<S> for LimitedBody<MAX> {
    type Rejection = Response;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Response> {
        let limit = MAX as u64;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit.max(DRAIN_CAP)) {
            return Err(answer(webhook::payload_too_large(declared, MAX)));
        }
        let mut data = req.into_body().into_data_stream();
        let mut buf = BytesMut::new();
        let mut seen: u64 = 0;
        while let Some(chunk) = data.next().await {
            match chunk {
                Ok(chunk) => {
                    seen += chunk.len() as u64;
                    if seen <= limit {
                        buf.extend_from_slice(&chunk);
                    } else if seen > DRAIN_CAP {
                        break;
                    }
                }
                // Already too large: that is the answer, whatever else went wrong.
                Err(_) if seen > limit => break,
                Err(e) => return Err(read_failed(&e)),
            }
        }
        if seen > limit {
            return Err(answer(webhook::payload_too_large(declared, MAX)));
        }
        Ok(Self(buf.freeze()))
    }
}

fn read_failed(e: &axum::Error) -> Response {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(timeout) = err.downcast_ref::<ReadTimeout>() {
            return answer(webhook::reject(408, "RequestTimeout", timeout.to_string()));
        }
        source = err.source();
    }
    answer(webhook::reject(400, "BadRequest", format!("could not read the request body: {e}")))
}

/// A status and JSON body as a response.
pub fn answer(a: WebhookAnswer) -> Response {
    (StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(a.body)).into_response()
}

/// `GET /api/health`: 200 healthy or degraded, 503 unhealthy, with the health report.
pub async fn get_health(State(s): State<Arc<Ports>>, headers: HeaderMap) -> Response {
    let key = headers.get("x-xdrsync-key").and_then(|v| v.to_str().ok());
    let h = crate::usecase::health_cache::current(&s, key.is_some_and(|k| s.config.webhook_key_matches(k))).await;
    (StatusCode::from_u16(h.http_status()).unwrap_or(StatusCode::OK), Json(h)).into_response()
}

/// `POST /api/sentinel/incidents`: the Sentinel webhook. The key is checked from the headers
/// before any of the body is read, and bodies are read [`MAX_BODIES_IN_FLIGHT`] at a time.
pub async fn post_webhook(State(s): State<Arc<Ports>>, req: Request) -> Response {
    let headers = req.headers().clone();
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if let Err(refused) = webhook::authorize(&s, header("x-xdrsync-key")) {
        return answer(refused);
    }
    let Ok(_turn) = BODY_SLOTS.acquire().await else {
        return answer(webhook::reject(503, "ServiceUnavailable", "the server is stopping"));
    };
    let body = match LimitedBody::<MAX_BODY_BYTES>::from_request(req, &()).await {
        Ok(LimitedBody(body)) => body,
        Err(refused) => return refused,
    };
    let call = WebhookCall { key: header("x-xdrsync-key"), content_type: header("content-type"), body: &body };
    answer(webhook::handle(&s, call).await)
}

/// Any route or method not served: a JSON 404.
pub async fn not_found() -> Response {
    answer(webhook::reject(404, "NotFound", "no such route"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::routing::post;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const SHORT: Duration = Duration::from_millis(300);
    /// Far longer than anything here should take; only bounds a failing test.
    const BOUND: Duration = Duration::from_secs(10);

    fn echo() -> Router {
        Router::new().route("/echo", post(|LimitedBody(b): LimitedBody<1024>| async move { b })).fallback(not_found)
    }

    async fn start(read_timeout: Duration) -> (std::net::SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, echo(), read_timeout, async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
        (addr, tx, task)
    }

    /// Writes `sent`, then reads until the server closes; returns what came back and how long.
    async fn stall(addr: std::net::SocketAddr, sent: &str) -> (String, Duration) {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let began = std::time::Instant::now();
        tcp.write_all(sent.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(BOUND, tcp.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "the server did not cut the stalled client off within {BOUND:?}");
        (String::from_utf8_lossy(&got).into_owned(), began.elapsed())
    }

    #[tokio::test]
    async fn a_client_that_stalls_in_the_body_gets_a_408_and_is_disconnected() {
        let (addr, _stop, _task) = start(SHORT).await;
        let (got, took) = stall(addr, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{").await;
        assert!(got.starts_with("HTTP/1.1 408"), "{got}");
        assert!(got.contains("application/json") && got.contains("\"RequestTimeout\""), "{got}");
        assert!(took >= SHORT, "cut off after {took:?}, before the deadline");
    }

    #[tokio::test]
    async fn a_client_that_stalls_in_the_head_is_disconnected() {
        let (addr, _stop, _task) = start(SHORT).await;
        let (got, took) = stall(addr, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Le").await;
        assert!(!got.contains(" 200 "), "{got}");
        assert!(took >= SHORT, "cut off after {took:?}, before the deadline");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_gets_the_json_413_and_others_pass() {
        let (addr, _stop, _task) = start(SHORT).await;
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/echo");
        let ok = client.post(&url).body(vec![b'a'; 1024]).send().await.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.bytes().await.unwrap().len(), 1024);
        let big = client.post(&url).body(vec![b'a'; 1025]).send().await.unwrap();
        assert_eq!(big.status(), 413);
        assert_eq!(big.headers()["content-type"], "application/json");
        let body: serde_json::Value = big.json().await.unwrap();
        assert_eq!(body["error"]["code"], "PayloadTooLarge");
        assert_eq!(body["error"]["message"], "body is 1025 bytes; the limit is 1024");
        // Chunked (no Content-Length): the limit holds all the same.
        let chunk = format!("2bc\r\n{}\r\n", "a".repeat(0x2bc));
        let request = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n"
        );
        let (got, _) = stall(addr, &request).await;
        assert!(got.starts_with("HTTP/1.1 413"), "{got}");
        assert!(got.contains("\"PayloadTooLarge\"") && got.contains("over the limit of 1024 bytes"), "{got}");
        let missing = client.get(format!("http://{addr}/nope")).send().await.unwrap();
        assert_eq!(missing.status(), 404);
        assert_eq!(missing.json::<serde_json::Value>().await.unwrap()["error"]["code"], "NotFound");
    }

    #[tokio::test]
    async fn a_connection_beyond_the_bound_gets_a_json_503_at_once() {
        let (addr, _stop, _task) = start(READ_TIMEOUT).await;
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\n").await.unwrap();
            held.push(tcp);
        }
        // The server has taken every held connection once one more, sent after them, is refused.
        let (got, took) = stall(addr, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 503"), "{got}");
        assert!(got.contains("\"ServiceUnavailable\"") && got.ends_with("}}"), "{got}");
        assert!(took < BOUND / 2, "{took:?}");
        drop(held.pop());
        let again = tokio::time::timeout(BOUND, async {
            loop {
                let (got, _) = stall(addr, "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
                if got.starts_with("HTTP/1.1 404") {
                    return;
                }
                tokio::task::yield_now().await;
            }
        });
        again.await.expect("a freed place is served again");
    }

    #[tokio::test]
    async fn shutdown_returns_with_an_idle_keep_alive_connection_open() {
        let (addr, stop, task) = start(READ_TIMEOUT).await;
        let client = reqwest::Client::new();
        assert_eq!(client.post(format!("http://{addr}/echo")).body("x").send().await.unwrap().status(), 200);
        stop.send(true).unwrap();
        tokio::time::timeout(BOUND, task).await.expect("serve returns promptly").unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer accepting");
    }
}
