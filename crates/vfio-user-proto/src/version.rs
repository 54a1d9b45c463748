//! VERSION: protocol version and the JSON capabilities both sides announce.

use serde_json::{json, Value};

use crate::error::{malformed, Error, Result};
use crate::msg::Reader;

/// Major version spoken here.
pub const MAJOR: u16 = 0;
/// Minor version offered (any minor the peer answers with is accepted).
pub const MINOR: u16 = 1;

/// Default `max_msg_fds` when the peer does not say (the spec's).
const DEFAULT_MAX_MSG_FDS: u32 = 1;
/// Default `max_data_xfer_size` when the peer does not say (the spec's).
const DEFAULT_MAX_DATA_XFER: u32 = 1 << 20;
/// The largest JSON accepted.
const MAX_JSON: usize = 4096;

/// The capabilities of one side. Migration is not offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Most fds the announcing side accepts in one message.
    pub max_msg_fds: u32,
    /// Most data bytes in one read/write/DMA message the announcing side accepts.
    pub max_data_xfer_size: u32,
    /// Supported page sizes (bit mask), if announced.
    pub pgsizes: Option<u64>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            max_msg_fds: DEFAULT_MAX_MSG_FDS,
            max_data_xfer_size: DEFAULT_MAX_DATA_XFER,
            pgsizes: None,
        }
    }
}

/// The VERSION message (request and reply have the same shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
    /// Capabilities.
    pub caps: Capabilities,
}

impl Version {
    /// Payload bytes: versions, then the JSON, NUL-terminated.
    pub fn encode(&self) -> Vec<u8> {
        let mut caps = json!({
            "max_msg_fds": self.caps.max_msg_fds,
            "max_data_xfer_size": self.caps.max_data_xfer_size,
        });
        if let Some(p) = self.caps.pgsizes {
            caps["pgsizes"] = json!(p);
        }
        let text = json!({ "capabilities": caps }).to_string();
        let mut v = Vec::with_capacity(5 + text.len());
        v.extend_from_slice(&self.major.to_le_bytes());
        v.extend_from_slice(&self.minor.to_le_bytes());
        v.extend_from_slice(text.as_bytes());
        v.push(0);
        v
    }

    /// Parses a payload. Missing capabilities take the spec's defaults; unknown keys
    /// are ignored; a wrongly typed known key is an error.
    pub fn decode(b: &[u8]) -> Result<Version> {
        let mut r = Reader::new("VERSION", b);
        let major = r.u16()?;
        let minor = r.u16()?;
        let rest = r.rest();
        if rest.len() > MAX_JSON {
            return Err(malformed(
                "VERSION",
                format!("{} bytes of JSON", rest.len()),
            ));
        }
        let text = rest.split(|&c| c == 0).next().unwrap_or_default();
        let mut caps = Capabilities::default();
        if !text.iter().all(u8::is_ascii_whitespace) {
            let v: Value = serde_json::from_slice(text)
                .map_err(|e| Error::Version(format!("invalid JSON: {e}")))?;
            if let Some(c) = v.get("capabilities") {
                let num = |key: &str| -> Result<Option<u64>> {
                    match c.get(key) {
                        None => Ok(None),
                        Some(x) => x
                            .as_u64()
                            .map(Some)
                            .ok_or_else(|| Error::Version(format!("'{key}' is not a number"))),
                    }
                };
                let clamp = |x: u64| x.min(u64::from(u32::MAX)) as u32;
                if let Some(x) = num("max_msg_fds")? {
                    caps.max_msg_fds = clamp(x);
                }
                if let Some(x) = num("max_data_xfer_size")? {
                    caps.max_data_xfer_size = clamp(x);
                }
                caps.pgsizes = num("pgsizes")?;
            }
        }
        Ok(Version { major, minor, caps })
    }

    /// Checks a peer's answer: same major; any minor.
    pub fn check_reply(&self) -> Result<()> {
        if self.major != MAJOR {
            return Err(Error::Version(format!(
                "peer speaks {}.{}, this side {MAJOR}.x",
                self.major, self.minor
            )));
        }
        if self.caps.max_msg_fds == 0 {
            // Zero fds would make DMA_MAP and SET_IRQS impossible; treat as the default.
            return Err(Error::Version("max_msg_fds is 0".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_round_trips() {
        let v = Version {
            major: 0,
            minor: 1,
            caps: Capabilities {
                max_msg_fds: 16,
                max_data_xfer_size: 65536,
                pgsizes: Some(4096),
            },
        };
        let b = v.encode();
        assert_eq!(*b.last().unwrap(), 0);
        assert!(!String::from_utf8_lossy(&b).contains("migration"));
        assert_eq!(Version::decode(&b).unwrap(), v);
    }

    #[test]
    fn missing_capabilities_take_the_defaults() {
        // rust-vmm's server answers 0.0 with only a JSON object.
        let mut b = vec![0, 0, 0, 0];
        b.extend_from_slice(br#"{"capabilities":{"migration":{"pgsize":4096}}}"#);
        let v = Version::decode(&b).unwrap();
        assert_eq!(v.caps.max_msg_fds, 1);
        assert_eq!(v.caps.max_data_xfer_size, 1 << 20);
        v.check_reply().unwrap();
        let bare = Version::decode(&[0, 0, 1, 0]).unwrap();
        assert_eq!(bare.minor, 1);
        assert_eq!(bare.caps, Capabilities::default());
    }

    #[test]
    fn bad_versions_are_errors() {
        let mut b = vec![1, 0, 0, 0];
        b.extend_from_slice(b"{}");
        assert!(Version::decode(&b).unwrap().check_reply().is_err());
        let mut j = vec![0, 0, 0, 0];
        j.extend_from_slice(br#"{"capabilities":{"max_msg_fds":"many"}}"#);
        assert!(Version::decode(&j).is_err());
        let mut broken = vec![0, 0, 0, 0];
        broken.extend_from_slice(b"{not json");
        assert!(Version::decode(&broken).is_err());
        assert!(Version::decode(&[0, 0, 0]).is_err());
        let mut huge = vec![0, 0, 0, 0];
        huge.resize(MAX_JSON + 10, b' ');
        assert!(Version::decode(&huge).is_err());
    }
}
