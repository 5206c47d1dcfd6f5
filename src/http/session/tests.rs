//! One test per transition, named by phase and event, on made-up time.

use super::*;
use std::fmt::Write as _;

const T: Timeouts = Timeouts {
    header: Duration::from_secs(10),
    send: Duration::from_secs(30),
    keepalive: Duration::from_secs(5),
    linger: Duration::from_secs(2),
};

/// Answers `200` with the target as the body; `close` in the target
/// asks for a close; `/file` sends a body of type `u64` afterwards.
struct Echo {
    answered: Vec<String>,
    /// `requests_before` of each answered request.
    befores: Vec<u32>,
    /// A target with `wait` in it is deferred while this holds.
    deferring: bool,
    /// `started` of each error answer (the access log's request time).
    error_starts: Vec<Instant>,
}

impl Respond for Echo {
    type Body = u64;
    fn limits(&self) -> HeadLimits {
        HeadLimits {
            max_header_bytes: 256,
            max_uri_bytes: 32,
        }
    }
    fn max_body_bytes(&self) -> u64 {
        10
    }
    fn respond(
        &mut self,
        head: &RequestHead<'_>,
        facts: ConnFacts,
        out: &mut Vec<u8>,
    ) -> Reply<u64> {
        if self.deferring && head.target.contains("wait") {
            return Reply {
                status: Status::Ok,
                close: None,
                body: None,
                defer: true,
            };
        }
        self.answered.push(head.target.to_string());
        self.befores.push(facts.requests_before);
        let _ = write!(out_string(out), "200 {};", head.target);
        Reply {
            status: Status::Ok,
            close: head
                .target
                .contains("close")
                .then_some(CloseReason::ResponseClose),
            body: (head.target == "/file").then_some(7),
            defer: false,
        }
    }
    fn respond_error(
        &mut self,
        status: Status,
        _: Option<Version>,
        is_head: bool,
        reason: CloseReason,
        facts: ConnFacts,
        out: &mut Vec<u8>,
    ) {
        self.error_starts.push(facts.started);
        let head = if is_head { " (head)" } else { "" };
        let _ = write!(out_string(out), "{} {reason}{head};", status.code());
    }
}

/// `write!` into a byte buffer.
fn out_string(out: &mut Vec<u8>) -> impl fmt::Write + '_ {
    struct W<'a>(&'a mut Vec<u8>);
    impl fmt::Write for W<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }
    W(out)
}

/// A session, driven like the connection drives it.
struct Harness {
    s: Session<u64>,
    echo: Echo,
    t0: Instant,
}

const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9);

impl Harness {
    fn new() -> Harness {
        let t0 = Instant::now();
        Harness {
            s: Session::new(t0, false),
            echo: Echo {
                answered: Vec::new(),
                befores: Vec::new(),
                deferring: false,
                error_starts: Vec::new(),
            },
            t0,
        }
    }

    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    /// The exchange, lent if the session holds none.
    fn ex(&mut self) -> &mut Exchange<u64> {
        let now = self.t0;
        let _ = self.s.input_room(|| Box::new(Exchange::new(256)), now);
        match &mut self.s.state {
            State::Busy(ex) => ex,
            _ => panic!("no exchange"),
        }
    }

    /// The exchange, if the session holds one.
    fn held_ex(&self) -> Option<&Exchange<u64>> {
        match &self.s.state {
            State::Busy(ex) => Some(ex),
            _ => None,
        }
    }

    /// The output written and not yet drained.
    fn output(&self) -> String {
        let out = self.held_ex().map_or(&[][..], |ex| &ex.out.buf[..]);
        String::from_utf8_lossy(out).into_owned()
    }

    fn file(&self) -> Option<u64> {
        self.held_ex().and_then(|ex| ex.out.file)
    }

    fn discarding_body(&self) -> bool {
        self.held_ex().is_some_and(|ex| {
            matches!(
                ex.reading,
                exchange::Reading::Body { .. } | exchange::Reading::HeldBody { .. }
            )
        })
    }

    fn holds_a_head(&self) -> bool {
        self.held_ex()
            .is_some_and(|ex| matches!(ex.reading, exchange::Reading::HeldBody { .. }))
    }

    /// May the connection read now?
    fn wants_input(&mut self) -> bool {
        let now = self.t0;
        self.s
            .input_room(|| Box::new(Exchange::new(256)), now)
            .is_some()
    }

    /// Bytes arrive at `secs`; everything buffered is answered and the
    /// phase settles (nothing is sent yet).
    fn recv(&mut self, bytes: &[u8], secs: f64) -> String {
        let now = self.at(secs);
        let room = self
            .s
            .input_room(|| Box::new(Exchange::new(256)), now)
            .expect("the session wants input");
        room[..bytes.len()].copy_from_slice(bytes);
        self.s.received(bytes.len(), now);
        self.answer(now)
    }

    fn answer(&mut self, now: Instant) -> String {
        let result = self.s.answer(&mut self.echo, PEER, now);
        assert!(result.is_ok(), "{result:?}");
        self.settle(now);
        self.output()
    }

    fn settle(&mut self, now: Instant) {
        let _ = self.s.settle(false, now);
    }

    /// All output (and the file body) leaves at `secs`.
    fn drain(&mut self, secs: f64) {
        let now = self.at(secs);
        if let Some(out) = self.s.out() {
            out.clear_sent();
            out.file = None;
        }
        self.s.progressed(now);
        self.answer(now);
    }

    fn deadline(&mut self) -> f64 {
        let d = self.s.deadline(&T);
        d.duration_since(self.t0).as_secs_f64()
    }

    fn expire(&mut self, secs: f64) -> Expired {
        let now = self.at(secs);
        self.s.on_deadline(&T, &mut self.echo, PEER, now)
    }
}

/// A deferred answer (credentials being verified) leaves its request,
/// and those pipelined behind it, in the input, uncounted; the next
/// drive answers them in order.
#[test]
fn reading_a_deferred_request_keeps_it_and_what_follows_until_asked_again() {
    let mut h = Harness::new();
    h.echo.deferring = true;
    let out = h.recv(
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /wait HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
        0.0,
    );
    assert_eq!(out, "200 /a;");
    assert_eq!(h.echo.answered, ["/a"]);
    assert_eq!(h.s.requests, 1, "the deferred one is not counted");
    assert!(!h.s.has_no_input(), "it stays in the input");
    // Asked again, still waiting: nothing changes.
    assert_eq!(h.answer(h.at(0.1)), "200 /a;");
    h.echo.deferring = false;
    assert_eq!(h.answer(h.at(0.2)), "200 /a;200 /wait;200 /b;");
    assert_eq!(h.echo.befores, [0, 1, 2]);
    assert_eq!(h.s.requests, 3);
}

#[test]
fn reading_then_complete_head_answers_and_writes() {
    let mut h = Harness::new();
    assert_eq!(h.s.phase(), Phase::Reading);
    assert_eq!(
        h.recv(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1.0),
        "200 /a;"
    );
    assert_eq!(h.s.phase(), Phase::Writing);
    assert_eq!(h.deadline(), 31.0, "send timeout from the answer");
}

#[test]
fn writing_then_progress_pushes_the_send_deadline() {
    let mut h = Harness::new();
    h.recv(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
    h.s.progressed(h.at(20.0));
    assert_eq!(h.deadline(), 50.0, "from the last progress, not the start");
    assert_eq!(h.expire(49.9), Expired::NotYet);
    assert_eq!(h.expire(50.0), Expired::Close(CloseReason::SendTimeout));
}

#[test]
fn writing_then_drained_goes_idle_with_the_keepalive_deadline() {
    let mut h = Harness::new();
    h.recv(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
    h.drain(2.0);
    assert_eq!(h.s.phase(), Phase::Idle);
    assert_eq!(h.deadline(), 7.0);
    assert_eq!(h.expire(7.0), Expired::Close(CloseReason::IdleTimeout));
}

#[test]
fn reading_silent_then_deadline_closes_without_a_word() {
    let mut h = Harness::new();
    assert_eq!(h.deadline(), 10.0);
    assert_eq!(h.expire(10.0), Expired::Close(CloseReason::HeaderTimeout));
    assert!(h.output().is_empty());
}

#[test]
fn idle_then_partial_head_then_deadline_answers_408() {
    let mut h = Harness::new();
    h.recv(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
    h.drain(1.5);
    h.recv(b"GET /b HT", 3.0);
    assert_eq!(h.s.phase(), Phase::Reading);
    // The head's deadline runs from its first byte, whatever trickles.
    h.recv(b"TP/1.1\r\nHost: x\r\n", 12.0);
    assert_eq!(h.deadline(), 13.0);
    assert_eq!(h.expire(13.0), Expired::Answered);
    assert_eq!(h.output(), "408 header_timeout;");
    assert_eq!(h.s.close_after_output(), Some(CloseReason::HeaderTimeout));
}

#[test]
fn reading_body_then_silence_times_out_from_the_last_byte() {
    let mut h = Harness::new();
    h.recv(
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n1234",
        1.0,
    );
    assert!(h.discarding_body());
    h.drain(1.0);
    assert_eq!(h.s.phase(), Phase::Reading, "still discarding the body");
    h.recv(b"56", 8.0);
    assert_eq!(h.deadline(), 18.0, "from the last body byte");
    assert_eq!(h.expire(18.0), Expired::Close(CloseReason::HeaderTimeout));
}

#[test]
fn reading_body_then_rest_then_next_head_answers_it() {
    let mut h = Harness::new();
    h.recv(
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n12",
        1.0,
    );
    assert_eq!(
        h.recv(b"34GET /b HTTP/1.1\r\nHost: x\r\n\r\n", 2.0),
        "200 /a;200 /b;"
    );
    assert_eq!(h.echo.answered, ["/a", "/b"]);
    assert!(!h.discarding_body());
}

#[test]
fn reading_pipelined_heads_answers_in_order_into_one_buffer() {
    let mut h = Harness::new();
    let out = h.recv(
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3",
        1.0,
    );
    assert_eq!(out, "200 /1;200 /2;");
    assert_eq!(h.s.requests(), 2);
    assert_eq!(h.s.phase(), Phase::Writing);
}

#[test]
fn writing_a_file_body_stops_answering_until_it_is_sent() {
    let mut h = Harness::new();
    let out = h.recv(
        b"GET /file HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
        1.0,
    );
    assert_eq!(out, "200 /file;");
    assert_eq!(h.file(), Some(7));
    assert!(!h.wants_input());
    h.drain(2.0);
    assert_eq!(h.output(), "200 /2;");
}

#[test]
fn writing_at_the_output_cap_stops_answering_and_reading() {
    let mut h = Harness::new();
    // Answers written and partly sent: the sent prefix still counts.
    h.ex().out.buf.resize(OUTPUT_CAP - 1, b'x');
    h.ex().out.pos = OUTPUT_CAP - 10;
    assert!(h.wants_input(), "below the cap");
    h.ex().out.buf.push(b'x');
    let request = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    h.ex().input.spare()[..request.len()].copy_from_slice(request);
    h.s.received(request.len(), h.at(1.0));
    h.answer(h.at(1.0));
    assert!(h.echo.answered.is_empty(), "the cap counts sent bytes too");
    assert!(!h.wants_input());
}

#[test]
fn reading_an_answer_that_says_close_stops_everything_after_it() {
    let mut h = Harness::new();
    let out = h.recv(
        b"GET /close HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
        1.0,
    );
    assert_eq!(out, "200 /close;");
    assert_eq!(h.s.close_after_output(), Some(CloseReason::ResponseClose));
    assert!(!h.wants_input());
    let _ = h.s.begin_closing(CloseReason::ResponseClose, h.at(2.0));
    assert_eq!(h.s.phase(), Phase::Closing);
    h.settle(h.at(2.5));
    assert_eq!(h.s.phase(), Phase::Closing, "nothing leads out of Closing");
    assert_eq!(h.deadline(), 4.0);
    assert_eq!(h.expire(4.0), Expired::Close(CloseReason::LingerTimeout));
}

#[test]
fn reading_a_bad_head_answers_400_and_closes() {
    let mut h = Harness::new();
    let out = h.recv(
        b"GET /a HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
        1.0,
    );
    assert_eq!(out, "400 protocol_error;");
    assert_eq!(h.s.close_after_output(), Some(CloseReason::ProtocolError));
    assert_eq!(h.s.requests(), 1);
}

#[test]
fn reading_a_head_request_past_the_limit_answers_413_without_a_body() {
    let mut h = Harness::new();
    let out = h.recv(
        b"HEAD /a HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n",
        1.0,
    );
    assert_eq!(out, "413 protocol_error (head);");
}

#[test]
fn reading_a_body_past_the_limit_answers_413_and_closes() {
    let mut h = Harness::new();
    let out = h.recv(
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n",
        1.0,
    );
    assert_eq!(out, "413 protocol_error;");
    assert_eq!(h.s.close_after_output(), Some(CloseReason::ProtocolError));
}

/// A held head (a chunked body) whose answer would be deferred cannot
/// wait in the input (its bytes left it): 503, and nothing after it.
#[test]
fn reading_a_held_head_whose_answer_is_deferred_is_refused_and_closes() {
    for (method, answer) in [
        ("POST", "503 protocol_error;"),
        ("HEAD", "503 protocol_error (head);"),
    ] {
        let mut h = Harness::new();
        h.echo.deferring = true;
        let head =
            format!("{method} /wait HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.recv(head.as_bytes(), 1.0), "");
        let rest = b"0\r\n\r\nGET /n HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(h.recv(rest, 2.0), answer, "{method}");
        assert!(h.echo.answered.is_empty(), "{method}");
    }
}

#[test]
fn reading_a_chunked_body_holds_the_answer_until_it_is_in() {
    let mut h = Harness::new();
    let head = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(h.recv(head, 1.0), "", "no answer before the body");
    assert_eq!(h.s.phase(), Phase::Reading);
    assert_eq!(h.recv(b"3\r\nabc\r\n", 2.0), "");
    assert_eq!(
        h.deadline(),
        12.0,
        "the discard deadline runs from the last byte"
    );
    assert_eq!(
        h.recv(b"0\r\n\r\nGET /n HTTP/1.1\r\nHost: x\r\n\r\n", 3.0),
        "200 /c;200 /n;"
    );
    assert_eq!(h.s.requests(), 2);
    assert_eq!(
        h.echo.befores,
        [0, 1],
        "the held request is still the first"
    );
    assert!(!h.holds_a_head());
}

#[test]
fn reading_past_u32_max_requests_counts_no_further() {
    // `--max-requests 0`: a connection may outlast the counter.
    let mut h = Harness::new();
    h.s.requests = u32::MAX - 1;
    let out = h.recv(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        1.0,
    );
    assert_eq!(out, "200 /a;200 /b;200 /c;");
    assert_eq!(h.echo.befores, [u32::MAX - 1, u32::MAX, u32::MAX]);
    assert_eq!(h.s.requests(), u32::MAX);
}

#[test]
fn reading_a_chunked_head_request_past_the_limit_answers_413_without_a_body() {
    let mut h = Harness::new();
    let out = h.recv(
        b"HEAD /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n0123456789a\r\n",
        1.0,
    );
    assert_eq!(out, "413 protocol_error (head);");
}

#[test]
fn reading_a_chunked_body_past_the_limit_in_one_write_answers_413() {
    let mut h = Harness::new();
    let out = h.recv(
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n0123456789a\r\n0\r\n\r\n",
        1.0,
    );
    assert_eq!(out, "413 protocol_error;");
    assert_eq!(h.s.close_after_output(), Some(CloseReason::ProtocolError));
    assert!(
        h.echo.answered.is_empty(),
        "the request itself is not served"
    );
}

#[test]
fn reading_a_trickled_chunked_body_past_the_limit_answers_413() {
    let mut h = Harness::new();
    h.recv(
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        1.0,
    );
    assert_eq!(h.recv(b"6\r\nabcdef\r\n", 2.0), "");
    assert_eq!(h.recv(b"6\r\nghijkl\r\n", 3.0), "413 protocol_error;");
    assert_eq!(h.s.close_after_output(), Some(CloseReason::ProtocolError));
}

#[test]
fn reading_malformed_chunks_answers_400() {
    let mut h = Harness::new();
    let out = h.recv(
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        1.0,
    );
    assert_eq!(out, "400 protocol_error;");
}

#[test]
fn reading_the_first_head_times_out_from_accept() {
    let mut h = Harness::new();
    h.recv(b"GET /a HT", 5.0);
    assert_eq!(
        h.deadline(),
        10.0,
        "not from the first byte, for a new connection"
    );
}

#[test]
fn reading_a_content_length_body_answers_at_the_head() {
    let mut h = Harness::new();
    let out = h.recv(
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n12",
        1.0,
    );
    assert_eq!(
        out, "200 /a;",
        "its length is known: no need to wait for it"
    );
    assert!(!h.holds_a_head());
}

#[test]
fn reading_body_bytes_is_progress() {
    let mut h = Harness::new();
    h.recv(
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n",
        1.0,
    );
    h.drain(1.0);
    let now = h.at(2.0);
    h.ex().input.spare()[..3].copy_from_slice(b"123");
    h.s.received(3, now);
    assert_eq!(h.s.answer(&mut h.echo, PEER, now), Ok(true));
    assert!(h.ex().input.is_empty());
    assert_eq!(h.deadline(), 12.0, "from the last body byte");
}

#[test]
fn writing_below_the_output_cap_keeps_answering() {
    let mut h = Harness::new();
    assert_eq!(OUTPUT_CAP, 64 * 1024);
    h.ex().out.buf.resize(2000, b'x');
    h.recv(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
    assert_eq!(h.echo.answered, ["/a"]);
}

#[test]
fn idle_then_first_byte_starts_the_head_deadline() {
    let mut h = Harness::new();
    h.recv(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
    h.drain(1.0);
    h.recv(b"G", 4.0);
    assert_eq!(h.s.phase(), Phase::Reading);
    assert_eq!(h.deadline(), 14.0);
}

#[test]
fn idle_then_parked_and_taken_up_elsewhere_keeps_its_count_and_deadline() {
    let mut h = Harness::new();
    h.recv(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
    assert_eq!(h.s.parked(h.at(1.0)), None, "a request under way stays");
    h.drain(2.0);
    let parked = h.s.parked(h.at(4.0)).unwrap();
    assert_eq!(
        parked,
        Parked {
            requests: 1,
            idle: Duration::from_secs(2),
            fresh: false
        }
    );
    // Another process takes it up at its own "now": Idle, 3 s left.
    let later = h.at(100.0);
    let taken: Session<u64> = Session::from_parked(parked, false, later);
    assert_eq!(taken.phase(), Phase::Idle);
    assert_eq!(taken.requests(), 1);
    assert_eq!(taken.deadline(&T), later + Duration::from_secs(3));
    // A fresh one keeps its header deadline from accept.
    let fresh = Harness::new();
    let parked = fresh.s.parked(fresh.at(4.0)).unwrap();
    assert!(parked.fresh);
    let taken: Session<u64> = Session::from_parked(parked, false, later);
    assert_eq!(taken.phase(), Phase::Reading);
    assert_eq!(taken.deadline(&T), later + Duration::from_secs(6));
}

#[test]
fn writing_then_progress_is_what_eviction_dates_a_stalled_response_from() {
    // Eviction (conn.rs `eviction_class`) ranks a stalled response by
    // `since`: the last write progress, not when its request came.
    let mut h = Harness::new();
    h.recv(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
    h.s.progressed(h.at(20.0));
    assert_eq!(h.s.since(), h.at(20.0));
}

#[test]
fn reading_a_partial_first_head_is_as_old_as_the_connection() {
    // Eviction ranks a partial head by `since`: from accept for the
    // first request, not from when its exchange was lent.
    let mut h = Harness::new();
    h.recv(b"GET /a HT", 5.0);
    assert_eq!(h.s.since(), h.t0);
}

#[test]
fn has_no_input_until_a_byte_of_a_request_arrives() {
    // Eviction counts a connection as Fresh (first to go) and graceful
    // shutdown closes it only while it has sent nothing of a request.
    let mut h = Harness::new();
    assert!(h.s.has_no_input(), "fresh, no buffers");
    h.ex();
    assert!(
        h.s.has_no_input(),
        "an exchange lent for a read that brought no request byte"
    );
    h.recv(b"G", 1.0);
    assert!(!h.s.has_no_input(), "a byte of a head");
}

#[test]
fn has_no_input_is_false_while_a_body_is_discarded() {
    // A body still arriving is input: the connection is not fresh.
    let mut h = Harness::new();
    h.recv(
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n12",
        1.0,
    );
    h.drain(1.0);
    assert!(h.ex().input.is_empty() && h.discarding_body());
    assert!(!h.s.has_no_input());
}

#[test]
fn all_input_consumed_when_the_answer_that_said_close_took_every_byte() {
    // The lingering close (conn/linger.rs) is skipped only then.
    let mut h = Harness::new();
    h.recv(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
    assert!(h.s.all_input_consumed());
}

#[test]
fn all_input_consumed_is_false_with_a_pipelined_request_unanswered() {
    // Closing without lingering here could reset the answer in flight.
    let mut h = Harness::new();
    h.recv(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\nGET /b", 1.0);
    assert!(!h.s.all_input_consumed());
}

#[test]
fn all_input_consumed_is_false_with_a_refused_body_unread() {
    // The client may still be sending the body that got its 413.
    let mut h = Harness::new();
    let out = h.recv(
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n",
        1.0,
    );
    assert_eq!(out, "413 protocol_error;");
    assert!(h.ex().input.is_empty());
    assert!(!h.s.all_input_consumed());
}

#[test]
fn request_line_names_the_request_being_answered() {
    // A contained panic is logged with it (reactor `internal error ...
    // while answering "..."`).
    let mut h = Harness::new();
    h.recv(b"GET /a HTTP/1.1\r\nHo", 1.0);
    assert_eq!(h.s.request_line(), Some(&b"GET /a HTTP/1.1"[..]));
}

#[test]
fn request_line_of_a_held_chunked_request_is_its_held_head() {
    // While its body is read the head is no longer in the input.
    let mut h = Harness::new();
    h.recv(
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
        1.0,
    );
    assert!(h.holds_a_head());
    assert_eq!(h.s.request_line(), Some(&b"POST /c HTTP/1.1"[..]));
}

#[test]
fn request_line_is_none_before_a_byte_of_a_request() {
    // The log then says "-", not an empty request line.
    let mut h = Harness::new();
    h.ex();
    assert_eq!(h.s.request_line(), None);
}

#[test]
fn closing_keeps_the_reason_and_gives_the_exchange_back() {
    // The linger's EOF closes for the answer's reason (conn/linger.rs
    // falls back to response_close only without one), and the buffers go
    // back to the pool when the linger begins.
    let mut h = Harness::new();
    let out = h.recv(b"GET /a HTTP/1.1\r\nBad Header\r\n\r\n", 1.0);
    assert_eq!(out, "400 protocol_error;");
    h.drain(2.0);
    let ex = h.s.begin_closing(CloseReason::ProtocolError, h.at(2.0));
    assert!(ex.is_some(), "the exchange, for the pool");
    assert_eq!(h.s.phase(), Phase::Closing);
    assert_eq!(h.s.close_after_output(), Some(CloseReason::ProtocolError));
}

#[test]
fn ready_to_close_once_the_answer_that_said_close_is_out() {
    // The connection begins its linger on it: not while the answer is
    // still unsent.
    let mut h = Harness::new();
    h.recv(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
    assert_eq!(h.s.ready_to_close(), None, "its answer is unsent");
    h.drain(2.0);
    assert_eq!(h.s.ready_to_close(), Some(CloseReason::ResponseClose));
}

#[test]
fn writing_then_a_new_head_starts_its_deadline_at_its_first_byte() {
    // A head that begins while the last answer leaves gets the header
    // timeout from its own first byte, not from that answer.
    let mut h = Harness::new();
    h.recv(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
    h.recv(b"GET /b HT", 3.0);
    h.drain(4.0);
    assert_eq!(h.s.phase(), Phase::Reading);
    assert_eq!(h.deadline(), 13.0);
}

#[test]
fn idle_then_transport_bytes_restart_the_keepalive_deadline() {
    // conn.rs reports the transport's own bytes (TLS records) sent
    // between requests as progress.
    let mut h = Harness::new();
    h.recv(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
    h.drain(2.0);
    assert_eq!(h.s.phase(), Phase::Idle);
    h.s.progressed(h.at(4.0));
    assert_eq!(h.deadline(), 9.0);
}

#[test]
fn fresh_then_a_read_that_brings_nothing_is_fresh_again() {
    // A TLS handshake's reads bring no request byte: the buffers go back
    // to the pool and the header deadline still runs from accept.
    let mut h = Harness::new();
    let now = h.at(3.0);
    assert!(
        h.s.input_room(|| Box::new(Exchange::new(256)), now)
            .is_some()
    );
    assert!(
        h.s.settle(false, now).is_some(),
        "the exchange, for the pool"
    );
    assert_eq!(h.s.phase(), Phase::Reading);
    assert_eq!(h.deadline(), 10.0);
}

#[test]
fn a_released_connection_gives_back_the_exchange_it_holds() {
    // conn.rs `release` puts it back in the pool; one without buffers has
    // none to give.
    let mut h = Harness::new();
    h.recv(b"GET /a HT", 1.0);
    let ex = h.s.into_exchange().expect("a request under way");
    assert_eq!(ex.input.bytes(), b"GET /a HT", "the very exchange lent");
    let fresh: Session<u64> = Session::new(Instant::now(), false);
    assert!(fresh.into_exchange().is_none());
}

#[test]
fn graceful_shutdown_closes_only_connections_with_nothing_in_flight() {
    let mut h = Harness::new();
    assert!(h.s.can_close_now(), "fresh: nothing sent yet");
    h.recv(b"GET /a HT", 1.0);
    assert!(!h.s.can_close_now(), "a partial head");
    h.recv(b"TP/1.1\r\nHost: x\r\n\r\n", 1.0);
    assert!(!h.s.can_close_now(), "its answer unsent");
    h.drain(2.0);
    assert!(h.s.can_close_now(), "idle");
}

#[test]
fn reading_a_partial_first_head_then_deadline_408_dates_it_from_accept() {
    // The 408's access log line reports the request time from
    // `ConnFacts::started`: when the head began.
    let mut h = Harness::new();
    h.recv(b"GET /a HT", 5.0);
    assert_eq!(h.expire(10.0), Expired::Answered);
    assert_eq!(h.echo.error_starts, [h.t0]);
}

#[test]
fn reading_nothing_in_a_lent_exchange_then_deadline_closes_without_a_word() {
    // Nothing of a request arrived: no 408, as for a connection that
    // never spoke.
    let mut h = Harness::new();
    h.ex();
    assert_eq!(h.expire(10.0), Expired::Close(CloseReason::HeaderTimeout));
    assert_eq!(h.output(), "");
}

#[test]
fn an_answer_that_said_close_sent_keeps_the_send_deadline_until_the_linger() {
    // Between its last byte out and the linger the send timeout still
    // applies, and its expiry is a send timeout.
    let mut h = Harness::new();
    h.recv(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
    h.drain(2.0);
    assert_eq!(h.deadline(), 32.0);
    assert_eq!(h.expire(31.9), Expired::NotYet);
    assert_eq!(h.expire(32.0), Expired::Close(CloseReason::SendTimeout));
}

#[test]
fn reading_broken_chunks_of_a_body_answered_at_its_head_closes_now() {
    // With `Expect: 100-continue` a chunked request is answered at its
    // head; malformed chunks after it are a protocol error conn.rs closes
    // on, not the start of another request.
    let mut h = Harness::new();
    let out = h.recv(
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
          Expect: 100-continue\r\n\r\n",
        1.0,
    );
    assert_eq!(out, "200 /c;");
    let now = h.at(2.0);
    h.ex().input.spare()[..4].copy_from_slice(b"zz\r\n");
    h.s.received(4, now);
    assert_eq!(
        h.s.answer(&mut h.echo, PEER, now),
        Err(CloseReason::ProtocolError)
    );
}

#[test]
fn reading_a_head_completed_later_starts_the_send_deadline_at_its_answer() {
    let mut h = Harness::new();
    h.recv(b"GET /a HT", 1.0);
    h.recv(b"TP/1.1\r\nHost: x\r\n\r\n", 5.0);
    assert_eq!(h.s.phase(), Phase::Writing);
    assert_eq!(h.deadline(), 35.0);
}

#[test]
fn writing_then_a_pipelined_answer_does_not_push_the_send_deadline() {
    // The send timeout runs from the last byte the client took: answers
    // piling up behind an unread one are no progress.
    let mut h = Harness::new();
    h.recv(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
    let out = h.recv(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n", 5.0);
    assert_eq!(out, "200 /a;200 /b;");
    assert_eq!(h.deadline(), 31.0);
}

#[test]
fn out_unsent_is_what_is_written_and_not_yet_sent() {
    // What the connection's Debug line counts as still to go.
    let mut h = Harness::new();
    h.recv(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1.0);
    let out = h.s.out().expect("an answer under way");
    out.pos = 4;
    assert_eq!(out.unsent(), b"/a;");
}
