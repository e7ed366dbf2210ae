//! The accept loop of `ivory serve|node`: axum's `serve` sets no header-read timeout and speaks no
//! TLS, so connections are served with hyper directly: a client that does not finish its request
//! head (or its TLS handshake) in time, or leaves an HTTP/1 keep-alive connection idle that long,
//! is disconnected; HTTP/2 connections are pinged and dropped when the peer stops answering.
//! With TLS the port speaks only TLS. Shutdown is graceful.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::ServerConfig;
use tracing::{debug, warn};

/// HTTP/2: a ping this often, and the connection is dropped if one is not answered in time.
const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams per HTTP/2 connection: nodes multiplex every group's Raft traffic on one connection.
const H2_STREAMS_MAX: u32 = 1024;
/// How long shutdown waits for open connections to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` completes, then drains the connections.
/// `header_read_timeout`: time to send a request's head (and to finish a TLS handshake), and the
/// longest idle gap between two HTTP/1 requests on a connection.
///
/// # Errors
/// Never on a single connection's failure.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    header_read_timeout: Duration,
    tls: Option<Arc<ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT)
        .max_concurrent_streams(H2_STREAMS_MAX);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    // Every connection holds a receiver: `closed()` on the sender tells when all have ended.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Nagle's delay costs about 5x latency on small replicated writes.
        let _ = tcp.set_nodelay(true);
        let (builder, app, stopped, acceptor) = (builder.clone(), app.clone(), stopped.clone(), acceptor.clone());
        tokio::spawn(async move {
            match acceptor {
                None => connection(&builder, tcp, app, stopped).await,
                Some(acceptor) => match tokio::time::timeout(header_read_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        // rustls verified any certificate shown against the CA: a shown one is a node's.
                        let certified = tls.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                        let app = if certified {
                            app.layer(axum::Extension(ivory_node::auth::PeerCertified))
                        } else {
                            app
                        };
                        connection(&builder, tls, app, stopped).await
                    }
                    // Plain HTTP, a certificate from another CA, or a stalled handshake.
                    Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake refused"),
                    Err(_) => debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, stop.closed()).await.is_err() {
        warn!("connections still open after {DRAIN_TIMEOUT:?}; closing");
    }
    Ok(())
}

async fn connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    app: axum::Router,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stopped.changed(), if !stopping => {
                // Finish the requests in flight, take no new ones.
                stopping = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
