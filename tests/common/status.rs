//! The status page (`--status-path /status`), the one way a test reads the
//! server's counters: asked on a connection of its own, in each of its
//! three forms.

use super::{Listening, Response, exchange};

/// `/status` with `query` (`""`, `"?format=json"`...). `Connection:
/// close`: the server closes this connection itself, so it is counted as
/// `response_close`, apart from the closes a test watches, and holds no
/// slot once answered.
pub fn status(server: &impl Listening, query: &str) -> Response {
    let mut s = server.connect();
    exchange(
        &mut s,
        &format!("GET /status{query} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"),
    )
}

/// The JSON form, parsed with the reference parser, so a malformed
/// document fails.
pub fn status_json(server: &impl Listening) -> serde_json::Value {
    let r = status(server, "?format=json");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    serde_json::from_slice(&r.body).expect("the status JSON parses")
}

/// The Prometheus text form.
pub fn status_prometheus(server: &impl Listening) -> String {
    status(server, "?format=prometheus").body_text()
}

/// nginx's stub_status, the page's default form, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StubStatus {
    pub active: u64,
    pub accepted: u64,
    pub handled: u64,
    pub requests: u64,
    pub reading: u64,
    pub writing: u64,
    pub waiting: u64,
}

impl StubStatus {
    /// Parses nginx's four lines; panics on anything else.
    pub fn parse(body: &str) -> StubStatus {
        let numbers: Vec<u64> = body
            .split_whitespace()
            .filter_map(|word| word.parse().ok())
            .collect();
        assert!(
            numbers.len() == 7 && body.starts_with("Active connections: "),
            "not stub_status: {body:?}"
        );
        StubStatus {
            active: numbers[0],
            accepted: numbers[1],
            handled: numbers[2],
            requests: numbers[3],
            reading: numbers[4],
            writing: numbers[5],
            waiting: numbers[6],
        }
    }
}

/// stub_status's figures. The status request is itself one connection
/// and one request, counted as reading while it is answered.
pub fn stub_status(server: &impl Listening) -> StubStatus {
    StubStatus::parse(&status(server, "").body_text())
}
