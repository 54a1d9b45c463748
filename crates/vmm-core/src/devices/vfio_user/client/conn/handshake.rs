//! Opening a connection: connect to the socket and negotiate the version (the
//! capabilities both sides then keep to).

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use vfio_user_proto as vu;
use vu::{Channel, Command};

use super::super::halt::Halt;
use super::{MAX_DATA, MAX_FDS, REPLY_POLL};

/// A new connection to `socket` and its VERSION exchange (up to `reply_timeout`, or
/// the grace after `halt` fires): `None` if nothing accepts there now.
pub(crate) fn dial(
    socket: &Path,
    reply_timeout: Duration,
    halt: &Halt,
) -> Option<vu::Result<(Channel, vu::Capabilities)>> {
    let stream = UnixStream::connect(socket).ok()?;
    Some(handshake(stream, reply_timeout, halt))
}

/// Negotiates the version on `stream`: the channel (its waits cut short by `halt`) and
/// what the server accepts.
pub(super) fn handshake(
    stream: UnixStream,
    reply_timeout: Duration,
    halt: &Halt,
) -> vu::Result<(Channel, vu::Capabilities)> {
    let mut chan = Channel::new(
        stream,
        vu::Limits {
            max_fds: MAX_FDS as usize,
            max_data: MAX_DATA,
        },
    );
    let ours = vu::Version {
        major: vu::MAJOR,
        minor: vu::MINOR,
        caps: vu::Capabilities {
            max_msg_fds: MAX_FDS,
            max_data_xfer_size: MAX_DATA,
            pgsizes: Some(4096),
        },
    };
    chan.set_poll(REPLY_POLL);
    halt.arm(&mut chan);
    let m = chan.call(
        Command::Version,
        &ours.encode(),
        &[],
        reply_timeout,
        &mut |_| Err(libc::EINVAL as u32),
    )?;
    let v = vu::Version::decode(&m.payload)?;
    v.check_reply()?;
    Ok((chan, v.caps))
}
