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

/// Concurrent connections served at most; more are answered 503.
const MAX_CONNECTIONS: usize = 16;
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

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    if !head_only {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}
