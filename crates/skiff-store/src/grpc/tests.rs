//! The peer port's listener options.

use futures::StreamExt;

#[tokio::test]
async fn accepted_peer_connections_have_nodelay() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let mut incoming = super::incoming(listener);
    let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let accepted = incoming
        .next()
        .await
        .expect("a connection")
        .expect("accepted");
    assert!(accepted.nodelay().expect("nodelay option"));
}
