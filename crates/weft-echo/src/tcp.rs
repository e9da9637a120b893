//! TCP mode: every connection gets `<name>: ` followed by the bytes it sends, then the
//! server closes its side when the client closes its own.

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Serves connections until the process ends.
pub async fn serve(listener: TcpListener, name: String) -> std::io::Result<()> {
    loop {
        let (conn, _) = listener.accept().await?;
        let prefix = format!("{name}: ");
        tokio::spawn(async move {
            // A client that resets the connection only ends its own exchange.
            let _ = echo(conn, &prefix).await;
        });
    }
}

async fn echo(conn: TcpStream, prefix: &str) -> std::io::Result<()> {
    let (mut reader, mut writer) = conn.into_split();
    writer.write_all(prefix.as_bytes()).await?;
    tokio::io::copy(&mut reader, &mut writer).await?;
    writer.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn answers_with_the_name_then_the_bytes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, "tcp-a".into()));
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"hello").await.unwrap();
        conn.shutdown().await.unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        assert_eq!(answer, "tcp-a: hello");
    }
}
