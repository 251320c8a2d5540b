//! The checks a request head passes before hyper sees it, and how its body is framed.
//!
//! hyper refuses what it cannot parse (an over-long head or target, too many headers, a
//! control byte in a value, conflicting lengths, a garbage request line) with a bare status
//! and no body. Checking the same things here first lets the gate answer each with MDE's
//! envelope instead. Pure functions over bytes, so every rule is tested without a socket.

use crate::error::ApiError;

/// Header fields in one request head, as hyper allows.
pub const MAX_HEADERS: usize = 100;
/// Longest request target (path and query). A longer one is 414, as hyper would answer.
pub const MAX_TARGET_BYTES: usize = 16 * 1024;
/// Room for the `Authorization` header beside `max_header_bytes`: the longest token kbgap
/// accepts ([`kbgap_auth::MAX_TOKEN_BYTES`]) and its `Authorization: Bearer ` framing.
pub const AUTHORIZATION_ALLOWANCE: usize = kbgap_auth::MAX_TOKEN_BYTES + 1024;

/// What the gate knows of the head limits.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// The whole head, `Authorization` included: beyond this the gate stops buffering.
    pub head_bytes: usize,
}

impl HeadLimits {
    pub fn new(max_header_bytes: usize) -> HeadLimits {
        HeadLimits {
            head_bytes: max_header_bytes.saturating_add(AUTHORIZATION_ALLOWANCE),
        }
    }
}

/// How the body after an accepted head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body, or `Content-Length` bytes of it.
    Length(u64),
    Chunked,
}

/// What the gate makes of the bytes buffered so far for the next head.
#[derive(Debug)]
pub enum Verdict {
    /// The head is not complete yet and nothing is wrong so far.
    Partial,
    /// A complete, acceptable head of `len` bytes, whose body is framed so.
    Accept {
        len: usize,
        framing: Framing,
    },
    Refuse(ApiError),
}

/// Checks the buffered start of a request head.
pub fn check(buf: &[u8], limits: HeadLimits) -> Verdict {
    if let Some(e) = target_too_long(buf) {
        return Verdict::Refuse(e);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() > limits.head_bytes => {
            Verdict::Refuse(head_too_large(limits))
        }
        Ok(httparse::Status::Partial) => Verdict::Partial,
        Ok(httparse::Status::Complete(len)) if len > limits.head_bytes => {
            Verdict::Refuse(head_too_large(limits))
        }
        Ok(httparse::Status::Complete(len)) => match accept(&req) {
            Ok(framing) => Verdict::Accept { len, framing },
            Err(e) => Verdict::Refuse(e),
        },
        Err(httparse::Error::TooManyHeaders) => {
            Verdict::Refuse(ApiError::RequestHeaderFieldsTooLarge(format!(
                "The request has more than {MAX_HEADERS} header fields."
            )))
        }
        Err(e) => Verdict::Refuse(ApiError::InvalidInput(format!(
            "The request head is malformed: {}.",
            malformed(e)
        ))),
    }
}

/// What is wrong with a head httparse could not read, in words a client can act on.
fn malformed(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "a header field name holds a byte it may not",
        httparse::Error::HeaderValue => "a header field value holds a control byte",
        httparse::Error::NewLine => "a line does not end with CRLF",
        httparse::Error::Token | httparse::Error::Version | httparse::Error::Status => {
            "the request line is not METHOD TARGET HTTP/1.1"
        }
        httparse::Error::TooManyHeaders => "too many header fields",
    }
}

fn head_too_large(limits: HeadLimits) -> ApiError {
    ApiError::RequestHeaderFieldsTooLarge(format!(
        "The request head is larger than the limit of {} bytes (Authorization included).",
        limits.head_bytes
    ))
}

/// A request line whose target is over [`MAX_TARGET_BYTES`], told as soon as the buffered
/// bytes show it, complete or not.
fn target_too_long(buf: &[u8]) -> Option<ApiError> {
    let start = buf.iter().position(|b| !matches!(b, b'\r' | b'\n'))?;
    let line = &buf[start..];
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let after_method = line.iter().position(|&b| b == b' ')? + 1;
    let rest = &line[after_method..];
    let target = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    (target > MAX_TARGET_BYTES).then(|| {
        ApiError::UriTooLong(format!(
            "The request target is longer than the limit of {MAX_TARGET_BYTES} bytes."
        ))
    })
}

/// The rules for a parsed head beyond the syntax httparse checks: a target and header
/// fields the `http` types accept, and one unambiguous body length (no request smuggling).
fn accept(req: &httparse::Request<'_, '_>) -> Result<Framing, ApiError> {
    let method = req.method.unwrap_or_default();
    if axum::http::Method::from_bytes(method.as_bytes()).is_err() {
        return Err(ApiError::InvalidInput(
            "The request method is malformed.".into(),
        ));
    }
    let target = req.path.unwrap_or_default();
    if axum::http::Uri::try_from(target).is_err() {
        return Err(ApiError::InvalidInput(
            "The request target is malformed.".into(),
        ));
    }
    let mut lengths = Vec::new();
    let mut codings = Vec::new();
    for h in req.headers.iter() {
        if axum::http::HeaderName::from_bytes(h.name.as_bytes()).is_err()
            || axum::http::HeaderValue::from_bytes(h.value).is_err()
        {
            return Err(ApiError::InvalidInput(format!(
                "The header field {:?} is malformed.",
                h.name
            )));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            lengths.push(h.value);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            codings.push(h.value);
        }
    }
    match (lengths.as_slice(), codings.is_empty()) {
        ([], true) => Ok(Framing::Length(0)),
        ([value], true) => std::str::from_utf8(value)
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok())
            .map(Framing::Length)
            .ok_or_else(|| {
                ApiError::InvalidInput(
                    "The Content-Length header is not a decimal number of bytes.".into(),
                )
            }),
        ([], false) => {
            // The codings of every Transfer-Encoding field, in order; the last must be
            // chunked, or the body's end could not be told (RFC 9112 §6.3).
            let last = codings
                .iter()
                .flat_map(|v| v.split(|&b| b == b','))
                .map(|c| c.trim_ascii())
                .rfind(|c| !c.is_empty());
            if last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")) {
                Ok(Framing::Chunked)
            } else {
                Err(ApiError::InvalidInput(
                    "The Transfer-Encoding header must end with chunked.".into(),
                ))
            }
        }
        (_, true) => Err(ApiError::InvalidInput(format!(
            "The request has {} Content-Length headers; send one.",
            lengths.len()
        ))),
        (_, false) => Err(ApiError::InvalidInput(
            "The request has both Transfer-Encoding and Content-Length; send one.".into(),
        )),
    }
}

/// Follows a chunked body (RFC 9112 §7.1) through the bytes handed to it, to find where it
/// ends and the next request head begins. Only the framing is read; the data passes by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunks {
    state: ChunkState,
    /// Bytes of the current size line or trailer section, bounded.
    line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// In a chunk-size line; `size` so far, whether any digit was seen, in extensions.
    Size {
        size: u64,
        digits: bool,
        ext: bool,
    },
    /// After the size line's CR.
    SizeLf {
        size: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// In the trailer section: `fresh` when at the start of a line.
    Trailer {
        fresh: bool,
    },
    TrailerLf {
        fresh: bool,
    },
    Done,
}

/// What [`Chunks::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// Every byte given belongs to the body, which goes on.
    More,
    /// The body ends after this many of the bytes given.
    End(usize),
    /// The framing is broken after this many bytes: hyper will refuse the body itself.
    Broken(usize),
}

/// A size line or trailer section longer than this is broken framing.
const MAX_CHUNK_LINE: usize = 8 * 1024;

impl Default for Chunks {
    fn default() -> Self {
        Chunks {
            state: ChunkState::Size {
                size: 0,
                digits: false,
                ext: false,
            },
            line: 0,
        }
    }
}

impl Chunks {
    pub fn feed(&mut self, bytes: &[u8]) -> Fed {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match self.state {
                ChunkState::Data { left } => {
                    let take = (left as usize).min(bytes.len() - i);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data { left }
                    };
                    continue;
                }
                ChunkState::Size { size, digits, ext } => {
                    self.line += 1;
                    if self.line > MAX_CHUNK_LINE {
                        return Fed::Broken(i);
                    }
                    match b {
                        b'\r' if digits => ChunkState::SizeLf { size },
                        b'\n' if digits => self.after_size(size),
                        _ if ext => ChunkState::Size { size, digits, ext },
                        b';' | b' ' | b'\t' if digits => ChunkState::Size {
                            size,
                            digits,
                            ext: true,
                        },
                        _ => match (b as char).to_digit(16) {
                            Some(d) if size >> 60 == 0 => ChunkState::Size {
                                size: size << 4 | u64::from(d),
                                digits: true,
                                ext,
                            },
                            _ => return Fed::Broken(i),
                        },
                    }
                }
                ChunkState::SizeLf { size } if b == b'\n' => self.after_size(size),
                ChunkState::DataCr if b == b'\r' => ChunkState::DataLf,
                ChunkState::DataCr | ChunkState::DataLf if b == b'\n' => {
                    self.line = 0;
                    ChunkState::Size {
                        size: 0,
                        digits: false,
                        ext: false,
                    }
                }
                ChunkState::Trailer { fresh } => {
                    self.line += 1;
                    if self.line > MAX_CHUNK_LINE {
                        return Fed::Broken(i);
                    }
                    match b {
                        b'\r' => ChunkState::TrailerLf { fresh },
                        b'\n' if fresh => ChunkState::Done,
                        b'\n' => ChunkState::Trailer { fresh: true },
                        _ => ChunkState::Trailer { fresh: false },
                    }
                }
                ChunkState::TrailerLf { fresh } if b == b'\n' => {
                    if fresh {
                        ChunkState::Done
                    } else {
                        ChunkState::Trailer { fresh: true }
                    }
                }
                _ => return Fed::Broken(i),
            };
            i += 1;
            if self.state == ChunkState::Done {
                return Fed::End(i);
            }
        }
        Fed::More
    }

    fn after_size(&mut self, size: u64) -> ChunkState {
        self.line = 0;
        if size == 0 {
            ChunkState::Trailer { fresh: true }
        } else {
            ChunkState::Data { left: size }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits { head_bytes: 4096 };

    fn refused(head: &[u8]) -> (u16, String) {
        match check(head, LIMITS) {
            Verdict::Refuse(e) => (e.status().as_u16(), e.to_string()),
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(head)),
        }
    }

    #[test]
    fn acceptable_heads_and_their_framing() {
        let ok = |head: &[u8]| match check(head, LIMITS) {
            Verdict::Accept { len, framing } => (len, framing),
            other => panic!("{other:?}"),
        };
        let get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /next";
        assert_eq!(ok(get), (34, Framing::Length(0)));
        let put = b"PUT /a HTTP/1.1\r\nContent-Length: 12\r\n\r\n";
        assert_eq!(ok(put), (put.len(), Framing::Length(12)));
        let chunked = b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n";
        assert_eq!(ok(chunked), (chunked.len(), Framing::Chunked));
        // Empty lines before a request line are tolerated, as hyper tolerates them.
        assert_eq!(ok(b"\r\nGET / HTTP/1.0\r\n\r\n"), (20, Framing::Length(0)));
        assert!(matches!(
            check(b"GET /healthz HTTP/1.1\r\nHost:", LIMITS),
            Verdict::Partial
        ));
    }

    #[test]
    fn what_hyper_would_refuse_bare_is_refused_with_a_reason() {
        let two = b"PUT /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
        assert_eq!(
            refused(two),
            (
                400,
                "The request has 2 Content-Length headers; send one.".into()
            )
        );
        let both = b"PUT /a HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(refused(both).0, 400);
        let gzip = b"PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
        assert_eq!(
            refused(gzip).1,
            "The Transfer-Encoding header must end with chunked."
        );
        let bad_length = b"PUT /a HTTP/1.1\r\nContent-Length: +5\r\n\r\n";
        assert_eq!(refused(bad_length).0, 400);
        let control = b"GET / HTTP/1.1\r\nX-A: a\x01b\r\n\r\n";
        assert_eq!(
            refused(control),
            (
                400,
                "The request head is malformed: a header field value holds a control byte.".into()
            )
        );
        assert_eq!(
            refused(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").0,
            400
        );
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            refused(many.as_bytes()),
            (431, "The request has more than 100 header fields.".into())
        );
    }

    #[test]
    fn over_long_targets_and_heads_are_told_before_they_end() {
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_TARGET_BYTES));
        assert_eq!(refused(&long.as_bytes()[..MAX_TARGET_BYTES + 10]).0, 414);
        let at_limit = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_TARGET_BYTES - 1));
        let wide = HeadLimits {
            head_bytes: 64 * 1024,
        };
        assert!(matches!(
            check(at_limit.as_bytes(), wide),
            Verdict::Accept { .. }
        ));
        let big = format!("GET / HTTP/1.1\r\nX-Pad: {}", "p".repeat(4096));
        assert_eq!(
            refused(big.as_bytes()),
            (
                431,
                "The request head is larger than the limit of 4096 bytes (Authorization included)."
                    .into()
            )
        );
    }

    #[test]
    fn chunked_bodies_end_where_their_framing_says() {
        let body = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\nGET";
        let end = body.len() - 3;
        assert_eq!(Chunks::default().feed(body), Fed::End(end));
        // Byte by byte, the same end.
        let mut c = Chunks::default();
        let at = body
            .iter()
            .enumerate()
            .find_map(|(i, b)| match c.feed(std::slice::from_ref(b)) {
                Fed::More => None,
                Fed::End(1) => Some(i + 1),
                other => panic!("{other:?} at {i}"),
            });
        assert_eq!(at, Some(end));
        assert_eq!(Chunks::default().feed(b"0\n\n"), Fed::End(3));
        assert_eq!(Chunks::default().feed(b"zz\r\n"), Fed::Broken(0));
        assert_eq!(Chunks::default().feed(b"3\r\nabcX"), Fed::Broken(6));
    }
}
