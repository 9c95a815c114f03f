//! A small HTTP listener standing for a chat webhook: it answers 200 to
//! every POST and keeps the JSON documents it received, in order.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Listener {
    /// `http://127.0.0.1:PORT/hooks/<token>`: the token must never be shown.
    pub url: String,
    /// The request target of each POST, and its body.
    received: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
}

/// What stands for the secret part of a webhook URL.
pub const TOKEN: &str = "T0KEN-do-not-print";

impl Listener {
    pub fn start() -> Listener {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/{TOKEN}", l.local_addr().unwrap());
        let received = Arc::new(Mutex::new(vec![]));
        let keep = received.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut c) = conn else { continue };
                let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
                let mut req = Vec::new();
                let mut buf = [0u8; 8192];
                let (head, body) = loop {
                    let n = c.read(&mut buf).unwrap_or(0);
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if body.len() >= len || n == 0 {
                            break (head.to_string(), body.to_string());
                        }
                    }
                    if n == 0 {
                        break (text, String::new());
                    }
                };
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                let target = head
                    .lines()
                    .next()
                    .and_then(|l| l.strip_prefix("POST "))
                    .and_then(|l| l.split(' ').next())
                    .unwrap_or("")
                    .to_string();
                let doc = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
                keep.lock().unwrap().push((target, doc));
            }
        });
        Listener { url, received }
    }

    pub fn received(&self) -> Vec<(String, serde_json::Value)> {
        self.received.lock().unwrap().clone()
    }

    /// `event node` of each document received (`event` alone for the run's).
    pub fn events(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|(_, d)| match d["node"].as_str() {
                Some(n) => format!("{} {n}", d["event"].as_str().unwrap_or("?")),
                None => d["event"].as_str().unwrap_or("?").to_string(),
            })
            .collect()
    }
}
