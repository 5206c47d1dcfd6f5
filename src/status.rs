//! The status endpoint's formats, as plain functions into a buffer.
//!
//! - [`stub_status`]: nginx's `stub_status` text, byte for byte, so the
//!   exporters and dashboards that read nginx can read holdline.
//! - [`prometheus`]: the Prometheus text exposition format (0.0.4), with
//!   what stub_status cannot say: closes by reason, evictions, accept
//!   pauses, EMFILE events, the fd figures, requests per connection.
//! - [`json`]: every counter and gauge as one JSON object, for scripts and
//!   for [`PAGE`], the live view a browser gets (`Accept: text/html`): a
//!   self-contained page (no external script, style or font) that polls
//!   the JSON once a second.
//!
//! The plain counters are printed from [`Stats::TOTALS`] and the counters
//! by kind from their [`ByKind`], in the kind's own order: a plain counter
//! added to `Stats`, or a close reason, eviction class or compression
//! outcome added to its enum, appears in JSON and Prometheus without an
//! edit here.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::acme::AcmeStatus;
use crate::budget::Budget;
use crate::close::CloseReason;
use crate::stats::{ByKind, Gauges, Kind, Shared, Stats, TlsHandshakes};
use crate::wheel::TimerWheel;

/// The live view: connections by phase, the fd budget in use, evictions
/// and closes by reason, requests per connection, timer-wheel occupancy.
pub const PAGE: &str = include_str!("status_page.html");

/// Deadlines in the answering worker's timer wheel: due within 1 s, within
/// 10 s, and later.
pub type DeadlineCounts = [usize; 3];

/// Every counter and gauge, as one JSON object (its size is fixed by the
/// number of close reasons, eviction classes and buckets: bounded).
pub fn json(
    out: &mut Vec<u8>,
    stats: &Stats,
    gauges: &Gauges,
    budget: &Budget,
    workers: usize,
    deadlines: DeadlineCounts,
) {
    let _ = write!(
        out,
        "{{\"version\":\"{}\",\"workers\":{workers},\"connections\":{{\"reading\":{},\"writing\":{},\"idle\":{},\"closing\":{},\"total\":{}}},",
        env!("CARGO_PKG_VERSION"),
        gauges.reading,
        gauges.writing,
        gauges.idle,
        gauges.closing,
        gauges.connections()
    );
    for total in Stats::TOTALS {
        let _ = write!(out, "\"{}\":{},", total.name, (total.value)(stats));
    }
    out.extend_from_slice(b"\"closes\":{");
    json_by_kind(out, &stats.closes);
    let TlsHandshakes {
        full,
        resumed,
        tls1_2,
        tls1_3,
    } = stats.tls_handshakes;
    let _ = write!(
        out,
        "}},\"tls_handshakes\":{{\"full\":{full},\"resumed\":{resumed},\"failed\":{},\"tls1_2\":{tls1_2},\"tls1_3\":{tls1_3}",
        stats.closes(CloseReason::TlsError)
    );
    out.extend_from_slice(b"},\"compression\":{");
    json_by_kind(out, &stats.compression);
    out.extend_from_slice(b"},\"evictions\":{");
    json_by_kind(out, &stats.evictions);
    let in_use = gauges.connections() + gauges.open_files;
    let _ = write!(
        out,
        "}},\"fd\":{{\"limit\":{},\"reserve\":{},\"budget\":{},\"file_headroom\":{},\"max_connections\":{},\"open_files\":{},\"in_use\":{in_use}}},",
        budget.limit,
        budget.reserve,
        budget.fds,
        budget.file_headroom,
        budget.max_connections,
        gauges.open_files
    );
    out.extend_from_slice(b"\"requests_per_connection\":{");
    let histogram = &stats.requests_per_connection;
    for (le, n) in histogram.buckets() {
        let _ = write!(out, "\"<={le}\":{n},");
    }
    let [within_1s, within_10s, later] = deadlines;
    let _ = write!(
        out,
        "\"more\":{},\"sum\":{}}},\"deadlines\":{{\"within_1s\":{within_1s},\"within_10s\":{within_10s},\"later\":{later}}}}}",
        histogram.more, histogram.sum
    );
}

/// `"name":n` for every kind, comma-separated, in the kind's order.
fn json_by_kind<K: Kind, const N: usize>(out: &mut Vec<u8>, counts: &ByKind<K, N>) {
    for (i, (kind, n)) in counts.iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        let _ = write!(out, "{comma}\"{}\":{n}", kind.name());
    }
}

/// nginx's format (ngx_http_stub_status_module.c), trailing spaces
/// included. "Waiting" is idle keep-alive; lingering closes count as
/// writing, as nginx counts them.
pub fn stub_status(out: &mut Vec<u8>, stats: &Stats, gauges: &Gauges) {
    let _ = write!(
        out,
        "Active connections: {} \nserver accepts handled requests\n {} {} {} \nReading: {} Writing: {} Waiting: {} \n",
        gauges.connections(),
        stats.accepted,
        stats.handled,
        stats.requests,
        gauges.reading,
        gauges.writing + gauges.closing,
        gauges.idle,
    );
}

fn metric(out: &mut Vec<u8>, name: &str, kind: &str, help: &str) {
    let _ = write!(
        out,
        "# HELP holdline_{name} {help}\n# TYPE holdline_{name} {kind}\n"
    );
}

/// The Prometheus text format.
pub fn prometheus(out: &mut Vec<u8>, stats: &Stats, gauges: &Gauges, budget: &Budget) {
    for total in Stats::TOTALS {
        metric(out, total.family, "counter", total.help);
        let _ = writeln!(out, "holdline_{} {}", total.family, (total.value)(stats));
    }
    metric(
        out,
        "closes_total",
        "counter",
        "Connections closed, by reason.",
    );
    prometheus_by_kind(out, "closes_total", "reason", &stats.closes);
    let TlsHandshakes {
        full,
        resumed,
        tls1_2,
        tls1_3,
    } = stats.tls_handshakes;
    metric(
        out,
        "tls_handshakes_total",
        "counter",
        "TLS handshakes finished, full or resumed (failed ones are the tls_error closes).",
    );
    let _ = writeln!(out, "holdline_tls_handshakes_total{{kind=\"full\"}} {full}");
    let _ = writeln!(
        out,
        "holdline_tls_handshakes_total{{kind=\"resumed\"}} {resumed}"
    );
    metric(
        out,
        "compression_total",
        "counter",
        "On-the-fly compression: responses served compressed (hit), files sent to the compressor (queued) or not, its queue full (skipped), files it finished (compressed).",
    );
    prometheus_by_kind(out, "compression_total", "outcome", &stats.compression);
    metric(
        out,
        "tls_versions_total",
        "counter",
        "TLS handshakes finished, by protocol version.",
    );
    let _ = writeln!(
        out,
        "holdline_tls_versions_total{{version=\"1.2\"}} {tls1_2}"
    );
    let _ = writeln!(
        out,
        "holdline_tls_versions_total{{version=\"1.3\"}} {tls1_3}"
    );
    metric(
        out,
        "evictions_total",
        "counter",
        "Connections evicted to make room, by class.",
    );
    prometheus_by_kind(out, "evictions_total", "class", &stats.evictions);
    metric(out, "connections", "gauge", "Open connections, by state.");
    for (state, n) in [
        ("reading", gauges.reading),
        ("writing", gauges.writing),
        ("idle", gauges.idle),
        ("closing", gauges.closing),
    ] {
        let _ = writeln!(out, "holdline_connections{{state=\"{state}\"}} {n}");
    }
    let gauges_list: [(&str, &str, u64); 5] = [
        (
            "open_files",
            "File fds held open for bodies (shared by every response sending the same file, and cached).",
            gauges.open_files as u64,
        ),
        ("fd_limit", "The soft RLIMIT_NOFILE in force.", budget.limit),
        (
            "fd_reserve",
            "Fds reserved for non-connection use.",
            budget.reserve as u64,
        ),
        (
            "fd_budget",
            "Fds for connections and file bodies (limit - reserve).",
            budget.fds as u64,
        ),
        (
            "max_connections",
            "Connections admitted at most.",
            budget.max_connections as u64,
        ),
    ];
    for (name, help, value) in gauges_list {
        metric(out, name, "gauge", help);
        let _ = writeln!(out, "holdline_{name} {value}");
    }
    metric(
        out,
        "requests_per_connection",
        "histogram",
        "Requests served per closed connection.",
    );
    let histogram = &stats.requests_per_connection;
    let mut cumulative = 0;
    for (le, n) in histogram.buckets() {
        cumulative += n;
        let _ = writeln!(
            out,
            "holdline_requests_per_connection_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    cumulative += histogram.more;
    let _ = writeln!(
        out,
        "holdline_requests_per_connection_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let _ = writeln!(
        out,
        "holdline_requests_per_connection_sum {}",
        histogram.sum
    );
    let _ = writeln!(out, "holdline_requests_per_connection_count {cumulative}");
}

/// One sample of `family` per kind, labelled `label="name"`.
fn prometheus_by_kind<K: Kind, const N: usize>(
    out: &mut Vec<u8>,
    family: &str,
    label: &str,
    counts: &ByKind<K, N>,
) {
    for (kind, n) in counts.iter() {
        let _ = writeln!(out, "holdline_{family}{{{label}=\"{}\"}} {n}", kind.name());
    }
}

/// Connections handled by each worker (`--workers`): how SO_REUSEPORT
/// spread the load.
pub fn per_worker(out: &mut Vec<u8>, handled: &[u64]) {
    metric(
        out,
        "worker_connections_handled_total",
        "counter",
        "Connections admitted, by worker.",
    );
    for (worker, n) in handled.iter().enumerate() {
        let _ = writeln!(
            out,
            "holdline_worker_connections_handled_total{{worker=\"{worker}\"}} {n}"
        );
    }
}

/// `notAfter` as Unix seconds (`None`: a placeholder, no certificate
/// yet), by site, for the certificates ACME manages.
fn certificates(acme: &AcmeStatus) -> Vec<(String, Option<u64>)> {
    let sites = acme.sites.lock().unwrap_or_else(|p| p.into_inner());
    sites
        .iter()
        .map(|c| {
            let label: String = c
                .site
                .chars()
                .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
                .collect();
            let expires = c
                .expires
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs());
            (label, expires)
        })
        .collect()
}

/// `,"tls_certificates":[{"site":..,"expires":..}],"acme":{..}`: each
/// ACME site's certificate expiry (Unix seconds, `null` while it has
/// only its placeholder) and the attempts by outcome.
fn acme_json(out: &mut Vec<u8>, acme: &AcmeStatus) {
    out.extend_from_slice(b",\"tls_certificates\":[");
    for (i, (site, expires)) in certificates(acme).iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        let expires = expires.map_or("null".to_string(), |e| e.to_string());
        let _ = write!(out, "{comma}{{\"site\":\"{site}\",\"expires\":{expires}}}");
    }
    let _ = write!(
        out,
        "],\"acme\":{{\"issued\":{},\"failed\":{}}}",
        acme.issued.load(Ordering::Relaxed),
        acme.failed.load(Ordering::Relaxed)
    );
}

/// The certificates' expiry and the ACME attempts, in Prometheus's form.
fn acme_prometheus(out: &mut Vec<u8>, acme: &AcmeStatus) {
    let certificates = certificates(acme);
    if certificates.is_empty() {
        return;
    }
    metric(
        out,
        "tls_certificate_expiry_seconds",
        "gauge",
        "When the certificate an ACME site serves expires (Unix time; absent while it has a placeholder).",
    );
    for (site, expires) in &certificates {
        if let Some(expires) = expires {
            let _ = writeln!(
                out,
                "holdline_tls_certificate_expiry_seconds{{site=\"{site}\"}} {expires}"
            );
        }
    }
    metric(
        out,
        "acme_attempts_total",
        "counter",
        "ACME orders, by outcome (issued: a certificate installed; failed: retried later).",
    );
    let issued = acme.issued.load(Ordering::Relaxed);
    let failed = acme.failed.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "holdline_acme_attempts_total{{outcome=\"issued\"}} {issued}"
    );
    let _ = writeln!(
        out,
        "holdline_acme_attempts_total{{outcome=\"failed\"}} {failed}"
    );
}

/// What the status path answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// nginx's stub_status text (the default, for existing exporters).
    Stub,
    /// `?format=prometheus`.
    Prometheus,
    /// `?format=json`.
    Json,
    /// The live page, for a browser (`Accept: text/html`).
    Page,
}

impl Format {
    /// The format a request for the status path asks for: by its query,
    /// else by whether it accepts HTML.
    pub fn asked(query: &str, accept: Option<&[u8]>) -> Format {
        let asked = |format: &str| query.split('&').any(|kv| kv == format);
        let browser =
            accept.is_some_and(|a| a.windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html")));
        if asked("format=prometheus") {
            Format::Prometheus
        } else if asked("format=json") {
            Format::Json
        } else if browser {
            Format::Page
        } else {
            Format::Stub
        }
    }
}

/// The figures a status answer reports, lent by the answering worker:
/// its own counters and gauges (the other workers' come from `shared`),
/// its fd budget and its timer wheel.
pub struct Report<'a> {
    pub stats: &'a Stats,
    /// This worker's gauges, its open files counted.
    pub gauges: Gauges,
    pub budget: &'a Budget,
    pub shared: &'a Shared,
    pub worker: usize,
    pub wheel: &'a TimerWheel,
    pub now: Instant,
}

/// Writes the status answer's body in `format` into `body` (cleared
/// first); returns its content type.
pub fn render(format: Format, report: &Report<'_>, body: &mut Vec<u8>) -> &'static str {
    body.clear();
    let (stats, gauges) = report
        .shared
        .total(report.worker, report.stats, &report.gauges);
    match format {
        Format::Prometheus => {
            prometheus(body, &stats, &gauges, report.budget);
            let per = report.shared.handled_by_worker(report.worker, report.stats);
            per_worker(body, &per);
            acme_prometheus(body, &report.shared.acme);
            "text/plain; version=0.0.4"
        }
        Format::Json => {
            let (soon, later) = (Duration::from_secs(1), Duration::from_secs(10));
            let deadlines = report.wheel.due_within(report.now, soon, later);
            let workers = report.shared.workers();
            json(body, &stats, &gauges, report.budget, workers, deadlines);
            // The object's last members: the certificates, in its braces.
            body.pop();
            acme_json(body, &report.shared.acme);
            body.push(b'}');
            "application/json"
        }
        Format::Page => {
            body.extend_from_slice(PAGE.as_bytes());
            "text/html"
        }
        Format::Stub => {
            stub_status(body, &stats, &gauges);
            "text/plain"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Reserve;

    #[test]
    fn stub_status_is_nginx_byte_for_byte() {
        let stats = Stats {
            accepted: 16630948,
            handled: 16630948,
            requests: 31070465,
            ..Stats::default()
        };
        let gauges = Gauges {
            reading: 6,
            writing: 170,
            idle: 106,
            closing: 9,
            open_files: 0,
        };
        let mut out = Vec::new();
        stub_status(&mut out, &stats, &gauges);
        // The example from nginx's documentation.
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Active connections: 291 \nserver accepts handled requests\n 16630948 16630948 31070465 \n\
             Reading: 6 Writing: 179 Waiting: 106 \n"
        );
    }

    #[test]
    fn prometheus_has_every_family_and_a_consistent_histogram() {
        let mut stats = Stats::default();
        for n in [1, 1, 3, 150] {
            stats.count_requests_per_connection(n);
        }
        stats.count_close(CloseReason::IdleTimeout);
        stats.count_handshake(crate::transport::Handshake {
            resumed: true,
            tls13: true,
        });
        stats.count_handshake(crate::transport::Handshake {
            resumed: false,
            tls13: false,
        });
        stats.count_handshake(crate::transport::Handshake {
            resumed: false,
            tls13: true,
        });
        let budget = Budget::compute(1024, 256, None, None, Reserve::new(1, 1)).unwrap();
        let mut out = Vec::new();
        prometheus(&mut out, &stats, &Gauges::default(), &budget);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("holdline_closes_total{reason=\"idle_timeout\"} 1\n"));
        assert!(text.contains("holdline_closes_total{reason=\"evicted\"} 0\n"));
        assert!(text.contains("holdline_fd_limit 256\n"));
        assert!(text.contains("holdline_tls_handshakes_total{kind=\"full\"} 2\n"));
        assert!(text.contains("holdline_tls_handshakes_total{kind=\"resumed\"} 1\n"));
        assert!(text.contains("holdline_tls_versions_total{version=\"1.2\"} 1\n"));
        assert!(text.contains("holdline_tls_versions_total{version=\"1.3\"} 2\n"));
        assert!(text.contains("holdline_requests_per_connection_bucket{le=\"1\"} 2\n"));
        assert!(text.contains("holdline_requests_per_connection_bucket{le=\"5\"} 3\n"));
        assert!(text.contains("holdline_requests_per_connection_bucket{le=\"100\"} 3\n"));
        assert!(text.contains("holdline_requests_per_connection_bucket{le=\"+Inf\"} 4\n"));
        assert!(text.contains("holdline_requests_per_connection_sum 155\n"));
        // Every sample line belongs to a declared family.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {family} ")), "{line}");
        }
    }
}
