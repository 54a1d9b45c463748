//! A minimal Differentiated System Description Table: AML naming the sleep states, so
//! OSPM finds the SLP_TYP values to write into PM1a_CNT (QEMU's values: S3 = 1,
//! S4 = 2, S5 = 0).

use super::sdt::Sdt;
use crate::devices::pm::{SLP_TYP_S3, SLP_TYP_S4, SLP_TYP_S5};

const NAME_OP: u8 = 0x08;
const PACKAGE_OP: u8 = 0x12;
const BYTE_PREFIX: u8 = 0x0a;

/// An AML integer constant (ZeroOp, OneOp or a ByteConst).
fn aml_byte(v: u8) -> Vec<u8> {
    match v {
        0 => vec![0x00],
        1 => vec![0x01],
        _ => vec![BYTE_PREFIX, v],
    }
}

/// `Name (_Sx_, Package (4) { typ, typ, 0, 0 })`: PM1a and PM1b SLP_TYP, two reserved.
fn sleep_package(name: &[u8; 4], typ: u8) -> Vec<u8> {
    let mut elems = Vec::new();
    for v in [typ, typ, 0, 0] {
        elems.extend(aml_byte(v));
    }
    // PkgLength (one byte while < 64) counts itself, NumElements and the elements.
    let pkg_len = 1 + 1 + elems.len();
    assert!(pkg_len < 64);
    let mut b = vec![NAME_OP];
    b.extend_from_slice(name);
    b.extend([PACKAGE_OP, pkg_len as u8, 4]);
    b.extend(elems);
    b
}

/// The DSDT (revision 1: 32-bit AML integers) with `\_S3`, `\_S4` and `\_S5`.
pub fn dsdt() -> Vec<u8> {
    let mut t = Sdt::new(b"DSDT", 1);
    t.bytes(&sleep_package(b"_S3_", SLP_TYP_S3))
        .bytes(&sleep_package(b"_S4_", SLP_TYP_S4))
        .bytes(&sleep_package(b"_S5_", SLP_TYP_S5));
    t.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_packages_encode_as_aml() {
        assert_eq!(
            sleep_package(b"_S3_", 1),
            [0x08, b'_', b'S', b'3', b'_', 0x12, 6, 4, 1, 1, 0, 0]
        );
        assert_eq!(
            sleep_package(b"_S4_", 2),
            [0x08, b'_', b'S', b'4', b'_', 0x12, 8, 4, 0x0a, 2, 0x0a, 2, 0, 0]
        );
    }
}
