//! A minimal HTTP/1.1 server for the scrape endpoint (`GET`/`HEAD` of `/metrics` or `/`)
//! and the http_sd endpoint: one response per connection (`Connection: close`), the body
//! produced by a handler per request path.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::{Error, Result};

/// The exposition format's content type.
pub(crate) const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Answers a request path with `(content type, body)`, or `None` for 404.
pub(crate) type Handler = Arc<dyn Fn(&str) -> Option<(&'static str, String)> + Send + Sync>;

/// Concurrent connections served at most; more are answered 503. Room for 16 scrapers
/// flat out (each may reconnect before its last connection's thread has ended) and a
/// few more.
const MAX_CONNECTIONS: usize = 64;
/// Bytes of request head read at most.
const MAX_HEAD: usize = 8192;
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `listener` on its own thread (named `name`) for the life of the process.
pub(crate) fn spawn(listener: TcpListener, name: &'static str, handler: Handler) -> Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    active.fetch_sub(1, Ordering::AcqRel);
                    let _ = respond(
                        &mut stream,
                        "503 Service Unavailable",
                        TEXT_FORMAT,
                        "busy\n",
                        false,
                    );
                    continue;
                }
                let handler = handler.clone();
                let active = active.clone();
                let spawned = thread::Builder::new()
                    .name("metrics-conn".into())
                    .spawn(move || {
                        if let Err(e) = serve(stream, &*handler) {
                            log::debug!("{name}: connection failed: {e}");
                        }
                        active.fetch_sub(1, Ordering::AcqRel);
                    });
                if spawned.is_err() {
                    log::warn!("{name}: cannot start a connection thread");
                }
            }
        })
        .map_err(|e| Error::Thread(name, e))?;
    Ok(())
}

fn serve(
    mut stream: TcpStream,
    handler: &(dyn Fn(&str) -> Option<(&'static str, String)> + Send + Sync),
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    let request_line = head.lines().next().unwrap_or("");
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if !matches!(method, "GET" | "HEAD") {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            TEXT_FORMAT,
            "GET only\n",
            false,
        );
    }
    match handler(path) {
        Some((kind, body)) => respond(&mut stream, "200 OK", kind, &body, method == "HEAD"),
        None => respond(
            &mut stream,
            "404 Not Found",
            TEXT_FORMAT,
            "not found\n",
            false,
        ),
    }
}

fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_HEAD {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Writes the whole answer with one `write_all`: a process that exits (the VM ended)
/// while a scrape is in flight then leaves the client nothing or everything in practice,
/// not a header announcing a body that never comes.
fn respond(
    stream: &mut impl Write,
    status: &str,
    content_type: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let mut answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        answer.push_str(body);
    }
    stream.write_all(answer.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records each `write` call.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_answer_goes_out_in_one_write() {
        let mut w = Writes::default();
        respond(&mut w, "200 OK", TEXT_FORMAT, "kvmbus_x 1\n", false).unwrap();
        assert_eq!(w.0.len(), 1, "{:?}", w.0);
        let text = String::from_utf8(w.0[0].clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nkvmbus_x 1\n"), "{text}");
        assert!(text.contains("Content-Length: 11\r\n"), "{text}");
        let mut h = Writes::default();
        respond(&mut h, "200 OK", TEXT_FORMAT, "kvmbus_x 1\n", true).unwrap();
        assert!(String::from_utf8(h.0.concat())
            .unwrap()
            .ends_with("\r\n\r\n"));
    }
}
