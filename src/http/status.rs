//! Response status codes holdline can send, with their reason phrases.

/// A status code holdline sends. Only the codes the server actually uses
/// are listed, so a `match` over them is exhaustive and each one has a
/// reason phrase and a short text body for errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Continue,
    Ok,
    NoContent,
    PartialContent,
    MovedPermanently,
    Found,
    NotModified,
    TemporaryRedirect,
    PermanentRedirect,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    LengthRequired,
    PreconditionFailed,
    ContentTooLarge,
    UriTooLong,
    RangeNotSatisfiable,
    ExpectationFailed,
    Misdirected,
    TooManyRequests,
    HeaderFieldsTooLarge,
    InternalServerError,
    NotImplemented,
    ServiceUnavailable,
    VersionNotSupported,
}

impl Status {
    /// The redirect status for `code` (301, 302, 307, 308).
    pub fn redirect(code: u16) -> Option<Status> {
        match code {
            301 => Some(Status::MovedPermanently),
            302 => Some(Status::Found),
            307 => Some(Status::TemporaryRedirect),
            308 => Some(Status::PermanentRedirect),
            _ => None,
        }
    }

    pub fn code(self) -> u16 {
        match self {
            Status::Continue => 100,
            Status::Ok => 200,
            Status::NoContent => 204,
            Status::PartialContent => 206,
            Status::MovedPermanently => 301,
            Status::Found => 302,
            Status::NotModified => 304,
            Status::TemporaryRedirect => 307,
            Status::PermanentRedirect => 308,
            Status::BadRequest => 400,
            Status::Unauthorized => 401,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::LengthRequired => 411,
            Status::PreconditionFailed => 412,
            Status::ContentTooLarge => 413,
            Status::UriTooLong => 414,
            Status::RangeNotSatisfiable => 416,
            Status::ExpectationFailed => 417,
            Status::Misdirected => 421,
            Status::TooManyRequests => 429,
            Status::HeaderFieldsTooLarge => 431,
            Status::InternalServerError => 500,
            Status::NotImplemented => 501,
            Status::ServiceUnavailable => 503,
            Status::VersionNotSupported => 505,
        }
    }

    /// The status line after `HTTP/1.1 `, code and reason phrase.
    pub fn line(self) -> &'static str {
        match self {
            Status::Continue => "100 Continue",
            Status::Ok => "200 OK",
            Status::NoContent => "204 No Content",
            Status::PartialContent => "206 Partial Content",
            Status::MovedPermanently => "301 Moved Permanently",
            Status::Found => "302 Found",
            Status::NotModified => "304 Not Modified",
            Status::TemporaryRedirect => "307 Temporary Redirect",
            Status::PermanentRedirect => "308 Permanent Redirect",
            Status::BadRequest => "400 Bad Request",
            Status::Unauthorized => "401 Unauthorized",
            Status::Forbidden => "403 Forbidden",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::RequestTimeout => "408 Request Timeout",
            Status::LengthRequired => "411 Length Required",
            Status::PreconditionFailed => "412 Precondition Failed",
            Status::ContentTooLarge => "413 Content Too Large",
            Status::UriTooLong => "414 URI Too Long",
            Status::RangeNotSatisfiable => "416 Range Not Satisfiable",
            Status::ExpectationFailed => "417 Expectation Failed",
            Status::Misdirected => "421 Misdirected Request",
            Status::TooManyRequests => "429 Too Many Requests",
            Status::HeaderFieldsTooLarge => "431 Request Header Fields Too Large",
            Status::InternalServerError => "500 Internal Server Error",
            Status::NotImplemented => "501 Not Implemented",
            Status::ServiceUnavailable => "503 Service Unavailable",
            Status::VersionNotSupported => "505 HTTP Version Not Supported",
        }
    }

    /// The short text body sent with an error status: the status line and a
    /// newline, so `curl` shows something readable.
    pub fn error_body(self) -> &'static str {
        match self {
            Status::BadRequest => "400 Bad Request\n",
            Status::Unauthorized => "401 Unauthorized\n",
            Status::Forbidden => "403 Forbidden\n",
            Status::NotFound => "404 Not Found\n",
            Status::MethodNotAllowed => "405 Method Not Allowed\n",
            Status::RequestTimeout => "408 Request Timeout\n",
            Status::LengthRequired => "411 Length Required\n",
            Status::PreconditionFailed => "412 Precondition Failed\n",
            Status::ContentTooLarge => "413 Content Too Large\n",
            Status::UriTooLong => "414 URI Too Long\n",
            Status::RangeNotSatisfiable => "416 Range Not Satisfiable\n",
            Status::ExpectationFailed => "417 Expectation Failed\n",
            Status::Misdirected => "421 Misdirected Request\n",
            Status::TooManyRequests => "429 Too Many Requests\n",
            Status::HeaderFieldsTooLarge => "431 Request Header Fields Too Large\n",
            Status::InternalServerError => "500 Internal Server Error\n",
            Status::NotImplemented => "501 Not Implemented\n",
            Status::ServiceUnavailable => "503 Service Unavailable\n",
            Status::VersionNotSupported => "505 HTTP Version Not Supported\n",
            Status::MovedPermanently => "301 Moved Permanently\n",
            Status::Found => "302 Found\n",
            Status::TemporaryRedirect => "307 Temporary Redirect\n",
            Status::PermanentRedirect => "308 Permanent Redirect\n",
            Status::Continue
            | Status::Ok
            | Status::NoContent
            | Status::PartialContent
            | Status::NotModified => "",
        }
    }

    /// RFC 9110 §6.4.1: 1xx, 204 and 304 never carry content.
    pub fn has_body(self) -> bool {
        !matches!(
            self,
            Status::Continue | Status::NoContent | Status::NotModified
        )
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.line())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_the_status_line() {
        assert_eq!(Status::NotFound.error_body(), "404 Not Found\n");
        assert_eq!(
            Status::ContentTooLarge.error_body(),
            "413 Content Too Large\n"
        );
    }

    #[test]
    fn line_starts_with_code() {
        for s in [
            Status::Ok,
            Status::NotFound,
            Status::HeaderFieldsTooLarge,
            Status::VersionNotSupported,
        ] {
            assert!(s.line().starts_with(&s.code().to_string()));
            assert!(s.error_body().is_empty() || s.error_body().starts_with(s.line()));
        }
    }
}
