//! One GET over a Unix socket with hyper, for the Engine API fields bollard
//! does not model, for polling an engine that restarts (a fresh
//! connection each time: pooled ones lead to the old engine and hang), and
//! for reading a stream (`/events`) as it comes.
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
    let exchange = async {
        let (status, mut chunks) = request(socket, path, query).await?;
        let body = chunks.rest().await?;
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
    Ok(body)
}

/// A GET whose answer streams (`/events`), read chunk by chunk. The
/// connection closes when it is dropped.
pub struct Chunks {
    body: hyper::body::Incoming,
    _sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    driver: tokio::task::JoinHandle<hyper::Result<()>>,
}

/// Sends the GET on a fresh connection and returns once the headers are in.
async fn request(
    socket: &Path,
    path: &str,
    query: &[(&str, &str)],
) -> anyhow::Result<(hyper::StatusCode, Chunks)> {
    let uri = target(path, query);
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("connecting to {}", socket.display()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    // The connection is driven beside the request, and ends with it.
    let driver = tokio::spawn(conn);
    let response = async {
        let request = hyper::Request::get(uri.as_str())
            .header(hyper::header::HOST, "docker")
            .body(Empty::<Bytes>::new())
            .context("building the request")?;
        anyhow::Ok(sender.send_request(request).await?)
    }
    .await;
    match response {
        Ok(response) => Ok((
            response.status(),
            Chunks {
                body: response.into_body(),
                _sender: sender,
                driver,
            },
        )),
        Err(e) => {
            driver.abort();
            Err(e)
        }
    }
}

/// Sends the GET and returns once the headers are in: the engine flushes
/// them when it starts listening, so nothing after this is missed.
pub async fn open_stream(
    socket: &Path,
    path: &str,
    query: &[(&str, &str)],
) -> anyhow::Result<Chunks> {
    let (status, mut chunks) =
        tokio::time::timeout(Duration::from_secs(10), request(socket, path, query))
            .await
            .context("no answer within 10 s")??;
    if !status.is_success() {
        let body = tokio::time::timeout(Duration::from_secs(5), chunks.rest())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        bail!(
            "HTTP {}: {}",
            status.as_u16(),
            String::from_utf8_lossy(&body).trim()
        );
    }
    Ok(chunks)
}

impl Chunks {
    /// The next piece of the answer; `None` once it ended.
    pub async fn next(&mut self) -> anyhow::Result<Option<Bytes>> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The rest of the answer, to its end.
    async fn rest(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut all = vec![];
        while let Some(chunk) = self.next().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }
}

impl Drop for Chunks {
    fn drop(&mut self) {
        self.driver.abort();
    }
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
    async fn a_stream_yields_each_chunk_as_it_comes() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let (go, ready) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut c, _) = listener.accept().await.unwrap();
            let mut req = vec![0u8; 4096];
            let n = c.read(&mut req).await.unwrap();
            c.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            ready.await.unwrap();
            c.write_all(b"8\r\n{\"a\":1}\n\r\n").await.unwrap();
            // Held open, as the engine holds /events, until the client closes it.
            let _ = c.read(&mut [0u8; 1]).await;
            String::from_utf8_lossy(&req[..n]).into_owned()
        });
        let mut chunks = open_stream(
            &sock,
            "/events",
            &[("filters", r#"{"type":["container"]}"#)],
        )
        .await
        .unwrap();
        // Nothing yet: the headers alone opened it.
        let none = tokio::time::timeout(Duration::from_millis(200), chunks.next()).await;
        assert!(none.is_err(), "no chunk before the server sends one");
        go.send(()).unwrap();
        let chunk = tokio::time::timeout(Duration::from_secs(5), chunks.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(&chunk[..], b"{\"a\":1}\n");
        drop(chunks);
        let req = server.await.unwrap();
        assert!(req.starts_with("GET /events?filters="), "{req}");
    }

    /// The real engine streams a task container's `die` as it happens, and
    /// nothing for a container that is not a task's: testkit's private
    /// dockerd, running a node image's `true` with and without a task label.
    #[tokio::test]
    #[ignore = "lab test: needs testkit's private dockerd"]
    async fn a_real_dockerd_streams_a_task_containers_death() {
        let sock = testkit::paths::daemon_socket();
        let images = testkit::cmd::docker()
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .run()
            .unwrap_or_else(|e| panic!("{e:#} (is the lab up?)"));
        let image = images
            .lines()
            .find(|i| i.starts_with("swarm-upgrade-testkit/node:"))
            .unwrap_or_else(|| panic!("no node image in the private dockerd: {images}"))
            .to_string();
        let filter = crate::exec::operation::TASK_STOPS;
        let mut chunks = open_stream(&sock, "/events", &[("filters", filter)])
            .await
            .unwrap();
        let run = |labels: &[&str]| {
            let mut c = testkit::cmd::docker();
            c.args(["run", "--rm", "--network", "none", "--entrypoint", "true"]);
            for l in labels {
                c.args(["--label", l]);
            }
            c.arg(&image).run().unwrap();
        };
        run(&["swarm-upgrade.test=not-a-task"]);
        let none = tokio::time::timeout(Duration::from_millis(500), chunks.next()).await;
        assert!(
            none.is_err(),
            "a plain container's death is filtered out: {none:?}"
        );
        run(&["com.docker.swarm.task.id=raw-test-task"]);
        let chunk = tokio::time::timeout(Duration::from_secs(10), chunks.next())
            .await
            .expect("the task container's death streams within 10 s")
            .unwrap()
            .expect("an event, not the end of the stream");
        let event: serde_json::Value = serde_json::from_slice(&chunk).unwrap();
        assert_eq!(event["Action"], "die", "{event}");
        assert_eq!(
            event["Actor"]["Attributes"]["com.docker.swarm.task.id"], "raw-test-task",
            "{event}"
        );
    }

    #[tokio::test]
    async fn an_error_status_is_an_error_with_the_body_for_a_get_and_a_stream() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s");
        let _server = serve_once(
            &sock,
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 22\r\nConnection: close\r\n\r\n{\"message\":\"no swarm\"}",
        )
        .await;
        let err = get(&sock, "/swarm", &[]).await.unwrap_err();
        assert_eq!(format!("{err:#}"), r#"HTTP 503: {"message":"no swarm"}"#);
        // A stream refused says why the same way.
        let sock = dir.path().join("events");
        let _server = serve_once(
            &sock,
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 24\r\n\r\n{\"message\":\"bad filter\"}",
        )
        .await;
        let err = open_stream(&sock, "/events", &[]).await.err().unwrap();
        assert_eq!(format!("{err:#}"), r#"HTTP 400: {"message":"bad filter"}"#);
    }
}
