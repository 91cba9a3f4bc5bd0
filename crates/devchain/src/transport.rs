//! The devchain as an alloy transport, in process: the same JSON-RPC as over HTTP,
//! without a socket. Build a provider with
//! `ProviderBuilder::new().connect_client(node.rpc_client())`.

use crate::{node::Node, rpc};
use alloy::{
    rpc::{
        client::RpcClient,
        json_rpc::{RequestPacket, ResponsePacket},
    },
    transports::{TransportError, TransportErrorKind, TransportFut},
};
use std::task::{Context, Poll};

/// A tower service answering alloy's requests from a [`Node`].
#[derive(Debug, Clone)]
pub struct LocalTransport {
    node: Node,
}

impl LocalTransport {
    /// A transport over `node`.
    pub const fn new(node: Node) -> Self {
        Self { node }
    }
}

impl tower::Service<RequestPacket> for LocalTransport {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RequestPacket) -> Self::Future {
        let node = self.node.clone();
        Box::pin(async move {
            let body = serde_json::to_vec(&req).map_err(TransportError::ser_err)?;
            let reply = rpc::handle_body(&node, &body)
                .ok_or_else(|| TransportErrorKind::custom_str("no response to a notification"))?;
            let text = reply.to_string();
            serde_json::from_str(&text).map_err(|e| TransportError::deser_err(e, text))
        })
    }
}

impl Node {
    /// An alloy RPC client talking to this node in process.
    pub fn rpc_client(&self) -> RpcClient {
        RpcClient::new(LocalTransport::new(self.clone()), true)
    }
}
