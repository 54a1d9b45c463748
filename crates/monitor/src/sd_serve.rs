//! `kvmbus sd serve`: the SD directory's target groups over HTTP for Prometheus'
//! `http_sd_configs` (200, `application/json`, `[]` when no VM runs), read afresh on
//! every request so it always matches the directory.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use crate::{http_server, sd, Error, Result};

/// The default `--listen` address of `kvmbus sd serve`: loopback only.
pub const SD_DEFAULT_LISTEN: &str = "127.0.0.1:9465";

/// Serves `dir`'s target groups on `listen` (paths `/` and `/targets`) from a thread
/// for the life of the process; returns the bound address.
pub fn serve_sd(dir: PathBuf, listen: SocketAddr) -> Result<SocketAddr> {
    let listener = TcpListener::bind(listen).map_err(|source| Error::SdBind {
        addr: listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| Error::SdBind {
        addr: listen,
        source,
    })?;
    let handler: http_server::Handler = Box::new(move |path: &str| {
        matches!(path, "/" | "/targets")
            .then(|| ("application/json", sd::targets_json(&dir).into()))
    });
    http_server::spawn(listener, "sd-http", handler)?;
    log::info!("sd: serving http://{addr}/targets");
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn get(addr: SocketAddr, req: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_targets_as_json() {
        let d = std::env::temp_dir().join(format!("monitor-sdserve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let addr = serve_sd(d.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
        let req = "GET /targets HTTP/1.1\r\nHost: x\r\n\r\n";
        let empty = get(addr, req);
        assert!(empty.starts_with("HTTP/1.1 200 OK\r\n"), "{empty}");
        assert!(
            empty.contains("Content-Type: application/json\r\n"),
            "{empty}"
        );
        assert!(empty.ends_with("\r\n\r\n[]"), "{empty}");
        let reg = sd::SdRegistration::create(&d, "a", "127.0.0.1:9", &[]).unwrap();
        let one = get(addr, "GET / HTTP/1.1\r\n\r\n");
        let body = one.split_once("\r\n\r\n").unwrap().1;
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v[0]["targets"][0], "127.0.0.1:9");
        assert_eq!(v[0]["labels"]["vm"], "a");
        drop(reg);
        assert!(get(addr, req).ends_with("[]"));
        assert!(get(addr, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(addr, "POST / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        let taken = serve_sd(d.clone(), addr).unwrap_err();
        assert!(matches!(taken, Error::SdBind { .. }), "{taken:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
