//! Request-body framing (RFC 9112 §6–§7): how many bytes after the head
//! belong to this request, so the next pipelined request starts at the
//! right byte. holdline serves files and never uses a request body; it
//! decodes and discards one, and refuses one larger than its limit.

/// How the request body is delimited, as decided from the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (no Content-Length, or zero).
    None,
    /// Exactly this many bytes (Content-Length).
    Length(u64),
    /// Transfer-Encoding with chunked last.
    Chunked,
}

/// A body could not be framed; the connection must close. A declared
/// Content-Length over the limit is refused with 413 before any body byte
/// is read; a chunked body that turns out malformed or too large while it
/// is discarded ends the connection (its request was answered already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Malformed chunked framing.
    Malformed,
    /// More than the allowed body bytes.
    TooLarge,
}

/// The longest chunk-size line (size, extensions) or trailer section we
/// accept; a peer that sends more is trying to make us read forever.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILER_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// Hex digits of a chunk size; `digits` counts them.
    Size {
        size: u64,
        digits: u8,
    },
    /// Chunk extensions or whitespace after the size, up to CR.
    Extension {
        size: u64,
    },
    /// The LF after a size line.
    SizeLf {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// Consumes a request body and discards it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDecoder {
    state: DecoderState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecoderState {
    /// Checked against the limit before the first byte.
    Length {
        remaining: u64,
    },
    Chunked(ChunkedDecoder),
}

/// A chunked body: where in its framing the next byte falls, and what
/// it counts against its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChunkedDecoder {
    state: Chunked,
    /// Body bytes (chunk data) seen so far, against `max_body_bytes`.
    seen: u64,
    /// Size-line and trailer bytes seen in the current line / section.
    line_bytes: usize,
    max_body_bytes: u64,
}

impl BodyDecoder {
    /// Returns `None` when the framing says there is no body.
    pub fn new(framing: Framing, max_body_bytes: u64) -> Result<Option<BodyDecoder>, BodyError> {
        let state = match framing {
            Framing::None => return Ok(None),
            Framing::Length(n) if n > max_body_bytes => return Err(BodyError::TooLarge),
            Framing::Length(n) => DecoderState::Length { remaining: n },
            Framing::Chunked => DecoderState::Chunked(ChunkedDecoder {
                state: Chunked::Size { size: 0, digits: 0 },
                seen: 0,
                line_bytes: 0,
                max_body_bytes,
            }),
        };
        Ok(Some(BodyDecoder { state }))
    }

    pub fn is_done(&self) -> bool {
        matches!(
            self.state,
            DecoderState::Length { remaining: 0 }
                | DecoderState::Chunked(ChunkedDecoder {
                    state: Chunked::Done,
                    ..
                })
        )
    }

    /// Consumes body bytes from the front of `input` and returns how many
    /// belonged to the body. Stops at the end of the body, so what follows
    /// is the next request.
    pub fn consume(&mut self, input: &[u8]) -> Result<usize, BodyError> {
        match &mut self.state {
            DecoderState::Length { remaining } => {
                let n = (*remaining).min(input.len() as u64);
                *remaining -= n;
                Ok(n as usize)
            }
            DecoderState::Chunked(chunked) => chunked.consume(input),
        }
    }
}

impl ChunkedDecoder {
    fn consume(&mut self, input: &[u8]) -> Result<usize, BodyError> {
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            let next = match self.state {
                Chunked::Done => return Ok(i),
                Chunked::Data { remaining } => {
                    let n = remaining.min((input.len() - i) as u64);
                    i += n as usize;
                    let remaining = remaining - n;
                    self.state = if remaining == 0 {
                        Chunked::DataCr
                    } else {
                        Chunked::Data { remaining }
                    };
                    continue;
                }
                Chunked::Size { size, digits } => {
                    self.line_bytes += 1;
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            // 16 hex digits overflow u64 at the 17th.
                            if digits >= 16 {
                                return Err(BodyError::TooLarge);
                            }
                            let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                            Chunked::Size {
                                size: size * 16 + d,
                                digits: digits + 1,
                            }
                        }
                        b';' | b' ' | b'\t' if digits > 0 => Chunked::Extension { size },
                        b'\r' if digits > 0 => Chunked::SizeLf { size },
                        _ => return Err(BodyError::Malformed),
                    }
                }
                Chunked::Extension { size } => {
                    self.line_bytes += 1;
                    match b {
                        b'\r' => Chunked::SizeLf { size },
                        b'\n' => return Err(BodyError::Malformed),
                        _ if self.line_bytes > MAX_CHUNK_LINE => {
                            return Err(BodyError::Malformed);
                        }
                        _ => Chunked::Extension { size },
                    }
                }
                Chunked::SizeLf { size } => {
                    if b != b'\n' {
                        return Err(BodyError::Malformed);
                    }
                    self.line_bytes = 0;
                    if size == 0 {
                        Chunked::TrailerStart
                    } else {
                        self.seen = self.seen.saturating_add(size);
                        if self.seen > self.max_body_bytes {
                            return Err(BodyError::TooLarge);
                        }
                        Chunked::Data { remaining: size }
                    }
                }
                Chunked::DataCr if b == b'\r' => Chunked::DataLf,
                Chunked::DataLf if b == b'\n' => Chunked::Size { size: 0, digits: 0 },
                Chunked::DataCr | Chunked::DataLf => return Err(BodyError::Malformed),
                Chunked::TrailerStart if b == b'\r' => Chunked::EndLf,
                Chunked::TrailerStart | Chunked::TrailerLine => {
                    self.line_bytes += 1;
                    if self.line_bytes > MAX_TRAILER_BYTES {
                        return Err(BodyError::TooLarge);
                    }
                    match b {
                        b'\r' => Chunked::TrailerLf,
                        b'\n' => return Err(BodyError::Malformed),
                        _ => Chunked::TrailerLine,
                    }
                }
                Chunked::TrailerLf if b == b'\n' => Chunked::TrailerStart,
                Chunked::TrailerLf => return Err(BodyError::Malformed),
                Chunked::EndLf if b == b'\n' => Chunked::Done,
                Chunked::EndLf => return Err(BodyError::Malformed),
            };
            self.state = next;
            i += 1;
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(
        framing: Framing,
        input: &[u8],
        split: usize,
    ) -> Result<(usize, bool), BodyError> {
        let mut d = BodyDecoder::new(framing, 1 << 20)?.expect("a body");
        let mut used = d.consume(&input[..split])?;
        if used == split {
            used += d.consume(&input[split..])?;
        }
        Ok((used, d.is_done()))
    }

    /// Every byte of the chunked framing is checked: a decoder that took
    /// anything for CR or LF would let a smuggler hide a request.
    #[test]
    fn chunk_framing_is_strict() {
        let chunked = |input: &[u8]| {
            let mut d = BodyDecoder::new(Framing::Chunked, 1 << 20)
                .unwrap()
                .unwrap();
            d.consume(input).map(|n| (n, d.is_done()))
        };
        let malformed = Err(BodyError::Malformed);
        assert_eq!(chunked(b"3\r\nabc\r\n0\r\n\r\n"), Ok((13, true)));
        assert_eq!(
            chunked(b"3\r\nabcXY"),
            malformed,
            "data not followed by CRLF"
        );
        assert_eq!(chunked(b"3\r\nabc\rX"), malformed, "CR not followed by LF");
        assert_eq!(
            chunked(b"3\rX"),
            malformed,
            "size line: CR not followed by LF"
        );
        assert_eq!(chunked(b"\r\n"), malformed, "a size line with no digits");
        assert_eq!(chunked(b";ext\r\n"), malformed, "an extension with no size");
        assert_eq!(chunked(b"1;ext\n"), malformed, "a bare LF ends no line");
        assert_eq!(
            chunked(b"0\r\nX-T: 1\rX"),
            malformed,
            "trailer CR without LF"
        );
        assert_eq!(chunked(b"0\r\n\rX"), malformed, "last CR without LF");
        assert_eq!(
            chunked(b"3\r\nabcX\n"),
            malformed,
            "data ended by a byte other than CR"
        );
        // Exactly the limit is accepted; one byte more is refused.
        let limited = |input: &[u8]| {
            let mut d = BodyDecoder::new(Framing::Chunked, 3).unwrap().unwrap();
            d.consume(input).map(|n| (n, d.is_done()))
        };
        assert_eq!(limited(b"3\r\nabc\r\n0\r\n\r\n"), Ok((13, true)));
        assert_eq!(limited(b"2\r\nab\r\n2\r\n"), Err(BodyError::TooLarge));
        assert_eq!(
            chunked(b"0\r\nX-T: 1\n"),
            malformed,
            "a bare LF in a trailer"
        );
        // A size line of exactly 4,096 bytes is the most accepted.
        let line = |ext: usize| {
            let mut v = b"1;".to_vec();
            v.extend(std::iter::repeat_n(b'x', ext));
            v.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
            v
        };
        assert!(matches!(chunked(&line(4094)), Ok((_, true))));
        assert_eq!(chunked(&line(4095)), malformed);
        // Trailers up to 16 KiB are read, then refused.
        let trailer = |n: usize| {
            let mut v = b"0\r\nX-T: ".to_vec();
            v.extend(std::iter::repeat_n(b't', n));
            v.extend_from_slice(b"\r\n\r\n");
            v
        };
        assert!(matches!(chunked(&trailer(2000)), Ok((_, true))));
        // "X-T: " + value + CR: 16,384 bytes is the most.
        assert!(matches!(chunked(&trailer(16_378)), Ok((_, true))));
        assert_eq!(chunked(&trailer(16_379)), Err(BodyError::TooLarge));
        assert_eq!(chunked(&trailer(17_000)), Err(BodyError::TooLarge));
    }

    #[test]
    fn length_stops_at_end() {
        assert_eq!(decode_all(Framing::Length(3), b"abcGET", 1), Ok((3, true)));
    }

    #[test]
    fn chunked_with_extensions_and_trailers_at_every_split() {
        let body = b"4;ext=1\r\nWiki\r\n5 \r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nGET /";
        let body_len = body.len() - 5;
        for split in 0..=body.len() {
            assert_eq!(
                decode_all(Framing::Chunked, body, split),
                Ok((body_len, true)),
                "split at {split}"
            );
        }
    }

    #[test]
    fn chunked_errors() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"4\r\nWikiXX",
            b"4\nWiki",
            b"11111111111111111\r\n",
        ] {
            assert!(decode_all(Framing::Chunked, bad, 0).is_err(), "{bad:?}");
        }
        assert_eq!(
            decode_all(Framing::Chunked, b"200000\r\n", 0),
            Err(BodyError::TooLarge)
        );
        assert_eq!(
            BodyDecoder::new(Framing::Length(2 << 20), 1 << 20),
            Err(BodyError::TooLarge)
        );
    }

    #[test]
    fn endless_extension_is_refused() {
        let mut d = BodyDecoder::new(Framing::Chunked, 1 << 20)
            .unwrap()
            .unwrap();
        let mut line = b"1;".to_vec();
        line.extend(std::iter::repeat_n(b'a', MAX_CHUNK_LINE + 10));
        assert_eq!(d.consume(&line), Err(BodyError::Malformed));
    }
}
