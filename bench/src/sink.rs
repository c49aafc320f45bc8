//! A trace collector that accepts every OTLP/HTTP export and drops it (`--traces sink`), on a
//! thread and runtime of its own so its work is not counted as hookd's.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::routing::post;

/// Starts the sink; its address.
pub fn start() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port for the trace sink");
    listener.set_nonblocking(true).expect("a non-blocking listener");
    let addr = listener.local_addr().expect("the sink's address");
    std::thread::Builder::new()
        .name("trace-sink".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the sink's runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                let app = axum::Router::new().route("/v1/traces", post(|_body: Bytes| async { "" }));
                let _ = axum::serve(listener, app).await;
            });
        })
        .expect("the sink's thread");
    addr
}
