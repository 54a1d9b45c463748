//! A minimal HTTP/1.1 GET over `std::net::TcpStream`, enough to scrape a metrics endpoint
//! (Content-Length, chunked, or read-to-close bodies).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::{Error, Result};

const TIMEOUT: Duration = Duration::from_secs(3);
/// Largest body accepted.
const MAX_BODY: u64 = 64 << 20;

/// `host:port` and path of an `http://` URL; `host:port` alone means `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub authority: String,
    pub path: String,
}

pub(crate) fn parse_url(url: &str) -> Result<Url> {
    let bad = || Error::BadUrl(url.to_owned());
    if url.contains("://") && !url.starts_with("http://") {
        return Err(bad());
    }
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(bad());
    }
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'));
    let authority = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok(Url {
        authority,
        path: if path == "/" { "/".into() } else { path.into() },
    })
}

/// GETs `url` and returns the body of a 200 response.
pub(crate) fn get(url: &str) -> Result<String> {
    let u = parse_url(url)?;
    let io = |source| Error::Scrape {
        url: url.to_owned(),
        source,
    };
    let addr = u
        .authority
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| io(std::io::Error::other("no address")))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    // One write: `write!` on the stream itself would send each piece of the format as
    // its own segment, and a server that answers after the first could close on the rest.
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n",
        u.path, u.authority
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    stream.take(MAX_BODY).read_to_end(&mut raw).map_err(io)?;
    parse_response(url, &raw)
}

fn parse_response(url: &str, raw: &[u8]) -> Result<String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Error::Scrape {
            url: url.to_owned(),
            source: std::io::Error::other("truncated response"),
        })?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("").to_owned();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(Error::HttpStatus {
            url: url.to_owned(),
            status,
        });
    }
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size_line = String::from_utf8_lossy(&b[..eol]);
        let hex = size_line.split(';').next().unwrap_or("").trim();
        let Ok(n) = usize::from_str_radix(hex, 16) else {
            break;
        };
        b = &b[eol + 2..];
        if n == 0 || n > b.len() {
            out.extend_from_slice(&b[..n.min(b.len())]);
            break;
        }
        out.extend_from_slice(&b[..n]);
        b = b.get(n + 2..).unwrap_or(&[]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = parse_url("http://127.0.0.1:9464/metrics").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.path.as_str()),
            ("127.0.0.1:9464", "/metrics")
        );
        assert_eq!(parse_url("localhost:1").unwrap().path, "/metrics");
        assert_eq!(parse_url("http://h/").unwrap().authority, "h:80");
        assert_eq!(parse_url("[::1]:9/x").unwrap().authority, "[::1]:9");
        assert!(parse_url("https://h:1").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn parses_responses() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nx 1\n";
        assert_eq!(parse_response("u", ok).unwrap(), "x 1\n");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nx 1\r\n1\r\n\n\r\n0\r\n\r\n";
        assert_eq!(parse_response("u", chunked).unwrap(), "x 1\n");
        let nf = b"HTTP/1.1 404 Not Found\r\n\r\n";
        assert!(matches!(
            parse_response("u", nf),
            Err(Error::HttpStatus { .. })
        ));
        assert!(parse_response("u", b"HTTP/1.1 200").is_err());
    }

    #[test]
    fn refused_connection_is_a_scrape_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = get(&format!("127.0.0.1:{port}")).unwrap_err();
        assert!(matches!(err, Error::Scrape { .. }), "{err:?}");
    }
}
