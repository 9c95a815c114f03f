//! A minimal GET over a Unix socket, for the Engine API fields bollard does
//! not model. HTTP/1.0 keeps it simple: no chunking, the server closes.

use std::path::Path;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub async fn get_json(socket: &Path, path: &str) -> anyhow::Result<serde_json::Value> {
    let body = get(socket, path).await?;
    serde_json::from_slice(&body).context("response is not JSON")
}

pub async fn get(socket: &Path, path: &str) -> anyhow::Result<Vec<u8>> {
    let fut = async {
        let mut s = tokio::net::UnixStream::connect(socket).await?;
        let path = encode_path(path);
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes())
            .await?;
        let mut buf = vec![];
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(std::time::Duration::from_secs(60), fut)
        .await
        .context("no answer within 60 s")??;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("malformed HTTP response")?;
    let head = String::from_utf8_lossy(&buf[..split]);
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        bail!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&buf[split + 4..]).trim()
        );
    }
    Ok(buf[split + 4..].to_vec())
}

/// Percent-encodes the characters of a query that HTTP does not allow raw.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'"' | b'{' | b'}' | b'[' | b']' | b' ' => out.push_str(&format!("%{b:02X}")),
            _ => out.push(b as char),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_json_filters() {
        assert_eq!(
            encode_path(r#"/tasks?filters={"desired-state":["running"]}"#),
            "/tasks?filters=%7B%22desired-state%22:%5B%22running%22%5D%7D"
        );
    }

    #[tokio::test]
    async fn reads_a_response_from_a_unix_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        tokio::spawn(async move {
            let (mut c, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 1024];
            let n = c.read(&mut req).await.unwrap();
            assert!(String::from_utf8_lossy(&req[..n]).starts_with("GET /info HTTP/1.0"));
            c.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"ok\":1}")
                .await
                .unwrap();
        });
        let v = get_json(&sock, "/info").await.unwrap();
        assert_eq!(v["ok"], 1);
    }
}
