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
        _: ConnFacts,
        out: &mut Vec<u8>,
    ) {
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
