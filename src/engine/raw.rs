//! One GET over a Unix socket with hyper, for the Engine API fields bollard
//! does not model, and for polling an engine that restarts (a fresh
//! connection each time: pooled ones lead to the old engine and hang).
//! The path and every query value are percent-encoded here, so that callers
//! pass plain values (JSON filters included).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// What a path may not carry raw (RFC 3986 path characters stay; `/` too).
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

/// `path?name=value&...`, every part encoded.
fn target(path: &str, query: &[(&str, &str)]) -> String {
    let mut out: String = utf8_percent_encode(path, PATH).collect();
    if !query.is_empty() {
        out.push('?');
        out.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .finish(),
        );
    }
    out
}

pub async fn get_json(
    socket: &Path,
    path: &str,
    query: &[(&str, &str)],
) -> anyhow::Result<serde_json::Value> {
    let body = get(socket, path, query).await?;
    serde_json::from_slice(&body).context("response is not JSON")
}

pub async fn get(socket: &Path, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Vec<u8>> {
    let uri = target(path, query);
    let exchange = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .with_context(|| format!("connecting to {}", socket.display()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        // The connection is driven beside the request, and ends with it.
        let driver = tokio::spawn(conn);
        let request = hyper::Request::get(uri.as_str())
            .header(hyper::header::HOST, "docker")
            .body(Empty::<Bytes>::new())
            .context("building the request")?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        drop(sender);
        driver.abort();
        Ok::<_, anyhow::Error>((status, body))
    };
    let (status, body) = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .context("no answer within 60 s")??;
    if !status.is_success() {
        bail!(
            "HTTP {}: {}",
            status.as_u16(),
            String::from_utf8_lossy(&body).trim()
        );
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn encodes_json_filters_and_every_reserved_character() {
        assert_eq!(
            target("/tasks", &[("filters", r#"{"desired-state":["running"]}"#)]),
            "/tasks?filters=%7B%22desired-state%22%3A%5B%22running%22%5D%7D"
        );
        assert_eq!(
            target("/nodes/a b", &[("x", "1&y=2#+%")]),
            "/nodes/a%20b?x=1%26y%3D2%23%2B%25"
        );
        assert_eq!(target("/info", &[]), "/info");
    }

    /// Serves one request on a Unix socket; returns what it received.
    async fn serve_once(sock: &Path, answer: &'static [u8]) -> tokio::task::JoinHandle<String> {
        let listener = tokio::net::UnixListener::bind(sock).unwrap();
        tokio::spawn(async move {
            let (mut c, _) = listener.accept().await.unwrap();
            let mut req = vec![0u8; 4096];
            let n = c.read(&mut req).await.unwrap();
            c.write_all(answer).await.unwrap();
            String::from_utf8_lossy(&req[..n]).into_owned()
        })
    }

    #[tokio::test]
    async fn reads_a_response_from_a_unix_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s");
        let server = serve_once(
            &sock,
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{\"ok\":1}",
        )
        .await;
        let v = get_json(&sock, "/tasks", &[("filters", r#"{"node":["n1"]}"#)])
            .await
            .unwrap();
        assert_eq!(v["ok"], 1);
        let req = server.await.unwrap();
        assert!(
            req.starts_with("GET /tasks?filters=%7B%22node%22%3A%5B%22n1%22%5D%7D HTTP/1.1\r\n"),
            "{req}"
        );
    }

    /// Against a real dockerd: testkit's private one, which the lab suite
    /// starts (`testkit up`) before the ignored tests run; not a swarm, so
    /// `/tasks` answers an error status.
    #[tokio::test]
    #[ignore = "lab test: needs testkit's private dockerd"]
    async fn talks_to_a_real_dockerd() {
        let sock = testkit::paths::daemon_socket();
        let info = get_json(&sock, "/info", &[])
            .await
            .unwrap_or_else(|e| panic!("{}: {e:#} (is the lab up?)", sock.display()));
        assert!(info["ServerVersion"].is_string(), "{info}");
        let filter = format!(r#"{{"label":["{}"]}}"#, testkit::paths::LAB_LABEL);
        let containers = get_json(
            &sock,
            "/containers/json",
            &[("all", "1"), ("filters", &filter)],
        )
        .await
        .unwrap();
        assert!(containers.is_array(), "{containers}");
        let err = get(
            &sock,
            "/tasks",
            &[("filters", r#"{"desired-state":["running"]}"#)],
        )
        .await
        .unwrap_err();
        assert!(format!("{err:#}").starts_with("HTTP 503: "), "{err:#}");
    }

    #[tokio::test]
    async fn an_error_status_is_an_error_with_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s");
        let _server = serve_once(
            &sock,
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 22\r\nConnection: close\r\n\r\n{\"message\":\"no swarm\"}",
        )
        .await;
        let err = get(&sock, "/swarm", &[]).await.unwrap_err();
        assert_eq!(format!("{err:#}"), r#"HTTP 503: {"message":"no swarm"}"#);
    }
}
