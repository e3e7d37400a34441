//! Listening sockets with a deep accept queue. A fleet reconnecting at
//! once (after a broker or controller restart, or a deploy that sends
//! every device to download) opens thousands of connections within a
//! second; with the usual backlog of 1,024 the kernel drops the rest of
//! the handshakes and each dropped client waits out SYN retransmission
//! (1, 2, 4, 8... s). The fleet simulator saw 337,050 such drops at
//! 10,000 devices: the API answered in 4-18 s with its CPU mostly idle.

use std::io;
use tokio::net::{TcpListener, TcpSocket};

/// The accept queue asked for (the kernel caps it at
/// `net.core.somaxconn`, 4,096 by default on current Linux).
pub const BACKLOG: u32 = 8192;

/// Binds `addr` (a `host:port` or socket address) and listens with
/// [`BACKLOG`]; `SO_REUSEADDR` as tokio's own `bind` sets it.
pub async fn bind(addr: impl tokio::net::ToSocketAddrs) -> io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = match a {
            std::net::SocketAddr::V4(_) => TcpSocket::new_v4()?,
            std::net::SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a) {
            Ok(()) => return socket.listen(BACKLOG),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind")))
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_listener_binds_a_free_port_and_accepts() {
        let l = super::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        let (client, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
        assert!(client.is_ok() && accepted.is_ok());
        assert!(super::bind(addr).await.is_err(), "the port is taken");
    }
}
