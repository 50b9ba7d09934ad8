//! Serving connections, hardened against hostile and unlucky clients: the accept loop (a
//! connection cap, and accept errors such as `EMFILE` that back off instead of spinning or
//! stalling the connections already open), per-connection timeouts (request heads, idle and
//! stalled connections), and graceful shutdown with a deadline.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use tower::ServiceExt;

use crate::auth::Peer;
use crate::config::Server;
use crate::tls::TlsState;

/// How long the accept loop pauses after an accept error that a retry right away would repeat
/// (no file descriptors, no memory).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one log line per kind of accept error in this interval.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Raises the soft open-file limit to the hard limit, as Go programs do at start: every
/// connection is a descriptor, and the default soft limit (1024 under systemd) is far below
/// what a registry serves. Returns the new soft limit.
pub fn raise_open_file_limit() -> io::Result<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )?;
    }
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

/// `max_connections`, lowered so that a quarter of the open-file limit (at least 64
/// descriptors) stays free for storage: a connection flood must not starve the requests
/// already being served of the files they need.
fn connection_cap(max_connections: usize) -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let reserve = (soft / 4).max(64);
    max_connections.min(soft.saturating_sub(reserve)).max(1)
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, lets requests
/// in flight finish for `shutdown_timeout`, cuts the rest, and returns.
/// With `tls`, every connection is a TLS one, using the configuration current when it arrives.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    server: &Server,
    tls: Option<Arc<TlsState>>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout.max(Duration::from_millis(1)));
    // (Before the first byte, while the protocol is being sniffed, hyper's header timer does
    // not run yet: `Inactivity` gives a silent connection only the header timeout.)
    builder.http2().timer(TokioTimer::new());
    let idle = server.idle_timeout.max(Duration::from_millis(1));
    let header = server.header_read_timeout.max(Duration::from_millis(1));
    let cap = connection_cap(server.max_connections);
    tracing::debug!(connections = cap, "connection cap");
    let slots = Arc::new(Semaphore::new(cap));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut errors = AcceptErrors::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Finished connections leave the set.
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, address) = match accepted {
            Ok(connection) => connection,
            Err(e) => {
                if errors.note(&e).pause {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stream = Inactivity::new(stream, idle, header);
        let (router, builder, watcher, tls) = (router.clone(), builder.clone(), graceful.watcher(), tls.clone());
        connections.spawn(async move {
            let result = match tls {
                None => {
                    let peer = Peer {
                        address,
                        tls: false,
                        certificate_user: None,
                    };
                    serve_connection(stream, peer, router, &builder, watcher).await
                }
                Some(tls) => match handshake(stream, &tls, header).await {
                    Ok((stream, certificate_user)) => {
                        let peer = Peer {
                            address,
                            tls: true,
                            certificate_user,
                        };
                        serve_connection(stream, peer, router, &builder, watcher).await
                    }
                    Err(e) => Err(e.into()),
                },
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let in_flight = graceful.count();
    let deadline = server.shutdown_timeout;
    tracing::info!(connections = in_flight, "shutting down: finishing requests in flight");
    if tokio::time::timeout(deadline, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "shutdown deadline ({}) reached: cutting the remaining connections",
            humantime::format_duration(deadline)
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// Serves one connection (until it ends, or shutdown ends it), telling every request about
/// `peer`.
async fn serve_connection<I>(
    io: I,
    peer: Peer,
    router: Router,
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router.map_request(move |mut request: http::Request<_>| {
        request.extensions_mut().insert(peer.clone());
        request
    }));
    watcher
        .watch(
            builder
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .into_owned(),
        )
        .await
}

/// A TLS handshake within `limit`; the stream and the verified client certificate's user.
async fn handshake<S>(
    stream: S,
    tls: &TlsState,
    limit: Duration,
) -> io::Result<(tokio_rustls::server::TlsStream<S>, Option<String>)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
    let stream = tokio::time::timeout(limit, acceptor.accept(stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    let user = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(crate::tls::certificate_user);
    Ok((stream, user))
}

/// Accept errors: which ones call for a pause, and rate-limited logging of them.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Vec<(io::ErrorKind, i32, Instant, u64)>,
}

/// What to do about one accept error.
#[derive(Debug, PartialEq, Eq)]
struct AcceptVerdict {
    /// Pause before accepting again (retrying at once would fail the same way).
    pause: bool,
    /// It was logged (others of its kind in the interval are only counted).
    logged: bool,
}

impl AcceptErrors {
    /// Logs `e` (at most once per [`ACCEPT_LOG_INTERVAL`] per kind, with how many were not
    /// logged) and says whether to pause.
    fn note(&mut self, e: &io::Error) -> AcceptVerdict {
        let errno = e.raw_os_error().unwrap_or(0);
        // EMFILE, ENFILE, ENOBUFS, ENOMEM: accepting again at once fails again.
        let exhausted = matches!(errno, 24 | 23 | 105 | 12);
        let now = Instant::now();
        let entry = match self
            .last_logged
            .iter_mut()
            .find(|(k, n, ..)| *k == e.kind() && *n == errno)
        {
            Some(entry) => entry,
            None => {
                self.last_logged.push((e.kind(), errno, now - ACCEPT_LOG_INTERVAL, 0));
                self.last_logged.last_mut().expect("just pushed")
            }
        };
        let logged = now.duration_since(entry.2) >= ACCEPT_LOG_INTERVAL;
        if logged {
            tracing::warn!(error = %e, suppressed = entry.3, "accepting a connection failed");
            entry.2 = now;
            entry.3 = 0;
        } else {
            entry.3 += 1;
        }
        AcceptVerdict {
            pause: exhausted,
            logged,
        }
    }
}

/// A connection that is closed (its reads and writes fail with `TimedOut`) once no byte has
/// moved in either direction for `limit` while the server waits on it, or when its first byte
/// does not come within `first`.
struct Inactivity<S> {
    inner: S,
    limit: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<S> Inactivity<S> {
    fn new(inner: S, limit: Duration, first: Duration) -> Self {
        Inactivity {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(first.min(limit))),
        }
    }

    fn progressed(&mut self) {
        let next = tokio::time::Instant::now() + self.limit;
        // Resetting a timer costs a little: do it at most every second of progress.
        if next.duration_since(self.deadline.deadline()) >= Duration::from_secs(1) {
            self.deadline.as_mut().reset(next);
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the connection was idle too long")
}

impl<S: AsyncRead + Unpin> AsyncRead for Inactivity<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.progressed();
                }
                Poll::Ready(result)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Inactivity<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    self.progressed();
                }
                Poll::Ready(result)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    self.progressed();
                }
                Poll::Ready(result)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = ready!(Pin::new(&mut self.inner).poll_flush(cx));
        Poll::Ready(result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_descriptors_pauses_and_logs_once_per_interval() {
        let mut errors = AcceptErrors::default();
        let emfile = io::Error::from_raw_os_error(24);
        assert_eq!(
            errors.note(&emfile),
            AcceptVerdict {
                pause: true,
                logged: true
            }
        );
        for _ in 0..1000 {
            assert_eq!(
                errors.note(&emfile),
                AcceptVerdict {
                    pause: true,
                    logged: false
                }
            );
        }
        assert_eq!(errors.last_logged[0].3, 1000, "the others are counted");
        // Another kind is logged on its own; a reset connection needs no pause.
        let aborted = io::Error::from_raw_os_error(103);
        assert_eq!(
            errors.note(&aborted),
            AcceptVerdict {
                pause: false,
                logged: true
            }
        );
    }

    #[test]
    fn the_connection_cap_leaves_descriptors_for_storage() {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let cap = connection_cap(usize::MAX) as u64;
        assert!(cap <= soft.saturating_sub(64).max(1), "{cap} of {soft}");
        assert_eq!(connection_cap(10), 10.min(cap as usize));
    }
}
