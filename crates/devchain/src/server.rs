//! JSON-RPC over HTTP (axum).

use crate::{node::Node, rpc};
use axum::{
    Router,
    body::Body,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use std::{io, net::SocketAddr};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// Largest request body accepted, in bytes.
pub const MAX_BODY: usize = 5 * 1024 * 1024;

/// A running HTTP server; dropping it does not stop it, [`ServerHandle::shutdown`] does.
#[derive(Debug)]
pub struct ServerHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

impl ServerHandle {
    /// The RPC URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, finishes those in flight, and waits.
    pub async fn shutdown(self) -> io::Result<()> {
        let _ = self.stop.send(());
        self.task.await.map_err(io::Error::other)?
    }
}

/// Serves `node` over HTTP on `addr` (port 0 picks a free port).
pub async fn serve(node: Node, addr: SocketAddr) -> io::Result<ServerHandle> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/", post(handle)).with_state(node);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok(ServerHandle { addr, stop, task })
}

async fn handle(State(node): State<Node>, body: Body) -> Response {
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        let err = rpc::RpcError::invalid_request(format!(
            "request body too large: the limit is {MAX_BODY} bytes"
        ));
        let body = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": err.to_json()});
        return json_response(StatusCode::PAYLOAD_TOO_LARGE, &body);
    };
    match rpc::handle_body(&node, &bytes) {
        Some(v) => json_response(StatusCode::OK, &v),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

fn json_response(status: StatusCode, v: &serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}
