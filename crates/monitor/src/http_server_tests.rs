//! Tests of the poll(2) server: independence of clients, deadlines, the cap, methods.

use super::*;
use std::net::SocketAddr;

/// A server answering `/` and `/big` (`size` bytes) with `limits`; its address.
fn server(size: usize, limits: Limits) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let big: Body = "x".repeat(size).into();
    let handler: Handler = Box::new(move |path: &str| match path {
        "/" => Some((TEXT_FORMAT, "hello\n".into())),
        "/big" => Some((TEXT_FORMAT, big.clone())),
        _ => None,
    });
    spawn_with(listener, "test-http", handler, limits).unwrap();
    addr
}

fn limits(max_connections: usize, deadline_ms: u64) -> Limits {
    Limits {
        max_connections,
        deadline: Duration::from_millis(deadline_ms),
        ..Limits::default()
    }
}

fn request(addr: SocketAddr, req: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn get_head_404_and_405() {
    let addr = server(10, Limits::default());
    let get = request(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        get,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: 6\r\nConnection: close\r\n\r\nhello\n"
    );
    let head = request(addr, "HEAD /?x=1 HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 6\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
    assert!(request(addr, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
    assert!(request(addr, "POST / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    // A head split over several writes is read in full.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HT").unwrap();
    thread::sleep(Duration::from_millis(50));
    s.write_all(b"TP/1.1\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.ends_with("\r\n\r\nhello\n"), "{out}");
}

#[test]
fn an_idle_client_does_not_block_others() {
    let addr = server(10, limits(8, 10_000));
    let idle: Vec<_> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let t = Instant::now();
    for _ in 0..10 {
        assert!(request(addr, "GET / HTTP/1.1\r\n\r\n").ends_with("hello\n"));
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "served in {:?} with idle clients connected (deadline 10 s)",
        t.elapsed()
    );
    drop(idle);
}

#[test]
fn a_slow_reader_gets_the_whole_body_and_does_not_block_others() {
    let size = 8 << 20;
    let addr = server(size, limits(8, 30_000));
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /big HTTP/1.1\r\n\r\n").unwrap();
    // Nothing read yet: the server holds the unsent rest (more than socket buffers take).
    thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    assert!(request(addr, "GET / HTTP/1.1\r\n\r\n").ends_with("hello\n"));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 256 << 10];
    loop {
        let n = slow.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
        thread::sleep(Duration::from_millis(2));
    }
    let split = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..split]);
    assert!(
        head.contains(&format!("Content-Length: {size}\r\n")),
        "{head}"
    );
    assert_eq!(got.len() - split, size);
    assert!(got[split..].iter().all(|&b| b == b'x'));
}

#[test]
fn the_deadline_drops_a_silent_client() {
    let addr = server(10, limits(8, 300));
    let mut silent = TcpStream::connect(addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 16];
    // The server closes without an answer: end of stream (or a reset).
    let n = silent.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(250), "dropped after {took:?}");
    assert!(took < Duration::from_secs(5), "dropped after {took:?}");
}

#[test]
fn past_the_cap_connections_get_503_until_one_ends() {
    let addr = server(10, limits(2, 60_000));
    let a = TcpStream::connect(addr).unwrap();
    let b = TcpStream::connect(addr).unwrap();
    // The server has accepted both once a third is refused.
    let third = request(addr, "GET / HTTP/1.1\r\n\r\n");
    assert!(third.starts_with("HTTP/1.1 503 "), "{third}");
    assert!(third.ends_with("busy\n"), "{third}");
    drop(a);
    // The closed connection frees its slot once the server sees the end of stream.
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let r = request(addr, "GET / HTTP/1.1\r\n\r\n");
        if r.ends_with("hello\n") {
            break;
        }
        assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
        assert!(Instant::now() < end, "the slot never freed");
        thread::sleep(Duration::from_millis(20));
    }
    drop(b);
}

#[test]
fn an_oversized_head_is_answered_from_its_first_line() {
    let addr = server(10, Limits::default());
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = b"GET / HTTP/1.1\r\nX: ".to_vec();
    req.resize(MAX_HEAD + 100, b'a');
    // The server stops reading at the cap and answers; what it never read may reset.
    let _ = s.write_all(&req);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
}

#[test]
fn answers_are_capped_per_window_and_the_rest_wait() {
    let addr = server(
        10,
        Limits {
            responses_per_window: 3,
            ..Limits::default()
        },
    );
    // Twelve requests at once: all answered, in at least four windows.
    let t = Instant::now();
    let clients: Vec<_> = (0..12)
        .map(|_| thread::spawn(move || request(addr, "GET / HTTP/1.1\r\n\r\n")))
        .collect();
    for c in clients {
        let r = c.join().unwrap();
        assert!(r.ends_with("hello\n"), "{r}");
    }
    let took = t.elapsed();
    assert!(
        took >= RATE_WINDOW * 3,
        "12 answers at 3 per window took {took:?}"
    );
    // Connections that only connect and close take no part of the budget.
    for _ in 0..50 {
        drop(TcpStream::connect(addr).unwrap());
    }
    assert!(request(addr, "GET / HTTP/1.1\r\n\r\n").ends_with("hello\n"));
}

/// Records each write call (a vectored one as one call).
#[derive(Default)]
struct Writes(Vec<Vec<u8>>);

impl Write for Writes {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.push(b.to_vec());
        Ok(b.len())
    }
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        self.0
            .push(bufs.iter().flat_map(|b| b.iter().copied()).collect());
        Ok(bufs.iter().map(|b| b.len()).sum())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_answer_goes_out_in_one_write() {
    let mut w = Writes::default();
    let mut out = Out::new("200 OK", TEXT_FORMAT, "kvmbus_x 1\n".into(), false);
    assert!(out.write(&mut w).unwrap());
    assert_eq!(w.0.len(), 1, "{:?}", w.0);
    let text = String::from_utf8(w.0[0].clone()).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nkvmbus_x 1\n"), "{text}");
    assert!(text.contains("Content-Length: 11\r\n"), "{text}");
    let mut h = Writes::default();
    let mut out = Out::new("200 OK", TEXT_FORMAT, "kvmbus_x 1\n".into(), true);
    assert!(out.write(&mut h).unwrap());
    assert_eq!(h.0.len(), 1);
    assert!(String::from_utf8(h.0.concat())
        .unwrap()
        .ends_with("\r\n\r\n"));
}
