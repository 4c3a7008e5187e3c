//! The listener itself: HTTP/1.1 on hyper (already in the workspace for the tests' receiver; four
//! fixed paths need no router), read-only, ended by the watcher's cancellation token.
//!
//! It runs in tasks of its own and shares nothing with alerting but the [`Board`]'s short locks
//! and the notifier's counters, so a slow client, a scrape storm or a ZooKeeper read that hangs
//! never holds an alert up. Connections are capped ([`MAX_CONNECTIONS`]) and a client that does
//! not send its request headers within [`HEADER_WAIT`] is dropped.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::notify::Notifier;

use super::board::Board;
use super::source::Source;
use super::{metrics, page};

/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its request headers.
pub const HEADER_WAIT: Duration = Duration::from_secs(10);

/// What the handlers read.
pub struct Shared {
    pub board: Board,
    pub notifier: Arc<Notifier>,
    pub source: Source,
    /// This watcher as people know it: `flume-watcher on vm1 (pid 4242)`.
    pub me: String,
}

/// Accepts until `cancel`, then closes the listener's ZooKeeper session.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // E.g. out of file descriptors: let some close rather than spin.
                warn!(error = %e, "http listener cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (shared, cancel) = (shared.clone(), cancel.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(answer(req, &shared).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_WAIT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = conn => {
                    if let Err(e) = result {
                        debug!(%peer, error = %e, "http connection ended with an error");
                    }
                }
                _ = cancel.cancelled() => {}
            }
        });
    }
    shared.source.close().await;
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";

/// Only what reads: GET and HEAD (HEAD answers GET's status and headers, no body).
pub async fn answer(req: Request<Incoming>, shared: &Shared) -> Reply {
    let head = req.method() == Method::HEAD;
    if !head && req.method() != Method::GET {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "this listener is read-only: GET and HEAD only\n",
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let mut r = match req.uri().path() {
        "/" => status_page(shared).await,
        "/metrics" => metrics_text(shared).await,
        "/healthz" => healthz(&shared.board),
        "/api/v1/agents" => agents(shared).await,
        _ => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: /, /metrics, /healthz and /api/v1/agents are served here\n",
        ),
    };
    if head {
        *r.body_mut() = Full::new(Bytes::new());
    }
    r
}

/// 200 while the watcher has a working ZooKeeper session and a full view; 503 with the reason
/// when it is blind (the dead-man switch's notion).
fn healthz(board: &Board) -> Reply {
    let sight = board.sight();
    match sight.blind_since {
        None => reply(
            StatusCode::OK,
            TEXT,
            format!(
                "ok: a working ZooKeeper session and a full view; {}\n",
                if sight.leading {
                    "leading"
                } else {
                    "following"
                }
            ),
        ),
        Some(since) => {
            let how_long = SystemTime::now()
                .duration_since(since)
                .map(common::time::human)
                .unwrap_or_else(|_| "a moment".to_owned());
            let why = if sight.viewed {
                "no working ZooKeeper session"
            } else {
                "no full view of ZooKeeper yet"
            };
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                format!(
                    "blind: {why} since {} ({how_long}): agent outages are not seen\n",
                    common::time::format(since)
                ),
            )
        }
    }
}

async fn metrics_text(shared: &Shared) -> Reply {
    let view = shared.source.view().await;
    let sight = shared.board.sight();
    let deliveries = shared.board.deliveries();
    let channels = shared.notifier.stats();
    let text = metrics::render(&metrics::Scrape {
        sight: &sight,
        outages_opened: shared.board.outages_opened(),
        deliveries: &deliveries,
        channels: &channels,
        agents: view.as_ref().ok().map(|v| v.status.agents.as_slice()),
        silences: view.as_ref().ok().map(|v| v.status.silences.len() as u64),
    });
    reply(StatusCode::OK, metrics::CONTENT_TYPE, text)
}

/// The same JSON as `flume-watcher status --json`.
async fn agents(shared: &Shared) -> Reply {
    match shared.source.view().await {
        Ok(view) => match serde_json::to_string_pretty(&view.status) {
            Ok(text) => reply(StatusCode::OK, JSON, text + "\n"),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                JSON,
                serde_json::json!({ "error": e.to_string() }).to_string() + "\n",
            ),
        },
        Err(e) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            JSON,
            serde_json::json!({ "error": e.to_string() }).to_string() + "\n",
        ),
    }
}

async fn status_page(shared: &Shared) -> Reply {
    let view = shared.source.view().await;
    let sight = shared.board.sight();
    let channels = shared.notifier.stats();
    let deliveries = shared.board.deliveries();
    let html = page::render(&page::Page {
        sight: &sight,
        me: &shared.me,
        view: match &view {
            Ok(v) => Ok(v.as_ref()),
            Err(e) => Err(e.to_string()),
        },
        channels: &channels,
        last: &deliveries.last,
        now: SystemTime::now(),
    });
    let mut r = reply(StatusCode::OK, HTML, html);
    // Its own inline style and script, fetches of itself, nothing from elsewhere.
    r.headers_mut().insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    r
}
