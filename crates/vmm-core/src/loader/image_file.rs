//! Reading a guest image file safely: only a regular file, at most a given size.
//!
//! A FIFO named as `image` would block `open` and `read` until a writer comes, and a
//! character device like /dev/zero never ends: the file is opened non-blocking,
//! checked with `fstat` to be a regular file, and read with a cap (the guest memory
//! size: an image larger than the guest cannot be loaded anyway).

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use super::LoadError;

fn kind(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Reads the image at `path`, a regular file of at most `max` bytes.
pub fn read_image(path: &Path, max: u64) -> Result<Vec<u8>, LoadError> {
    let image = path.display().to_string();
    let err = |what: String| LoadError::Read {
        image: image.clone(),
        what,
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| err(e.to_string()))?;
    let meta = file.metadata().map_err(|e| err(e.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(err(format!(
            "it is {}; the image must be a regular file",
            kind(meta.file_type())
        )));
    }
    if meta.len() > max {
        return Err(err(format!(
            "{} bytes, more than the {max} bytes of guest memory",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow while we read: never take more than `max` (+1 to notice).
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > max {
        return Err(err(format!(
            "it grew past the {max} bytes of guest memory while being read"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("image-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_regular_file_is_read() {
        let p = dir("ok").join("k.elf");
        std::fs::write(&p, b"\x7fELF....").unwrap();
        assert_eq!(read_image(&p, 1 << 20).unwrap(), b"\x7fELF....");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let p = dir("fifo").join("k.elf");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; the result is checked.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let t = Instant::now();
        let e = read_image(&p, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("a FIFO") && e.contains("regular file"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn dev_zero_and_directories_are_refused() {
        let e = read_image(Path::new("/dev/zero"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a character device"), "{e}");
        let e = read_image(&dir("d"), 1 << 20).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
    }

    #[test]
    fn an_image_larger_than_guest_memory_is_refused() {
        let p = dir("big").join("k.elf");
        std::fs::write(&p, vec![0u8; 4097]).unwrap();
        let e = read_image(&p, 4096).unwrap_err().to_string();
        assert!(e.contains("4097 bytes, more than the 4096"), "{e}");
        assert_eq!(read_image(&p, 4097).unwrap().len(), 4097);
    }
}
