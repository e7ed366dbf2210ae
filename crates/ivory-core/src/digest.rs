//! A value's postcard encoding fed to a SHA-256 as the serializer writes it: the same hash as
//! feeding it `postcard::to_stdvec(value)`, without building and copying those bytes (a command's
//! fingerprint and the apply digest over every entry did that for each write).

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Feeds `value`'s encoding to `hash`; the encoding's length in bytes.
///
/// # Errors
/// When `value` cannot be encoded (postcard refuses, for one, a sequence of unknown length);
/// `hash` then holds part of it.
pub fn hash_encoding<T: Serialize + ?Sized>(value: &T, hash: &mut Sha256) -> postcard::Result<usize> {
    postcard::serialize_with_flavor(value, Hashing { hash, len: 0 })
}

struct Hashing<'a> {
    hash: &'a mut Sha256,
    len: usize,
}

impl postcard::ser_flavors::Flavor for Hashing<'_> {
    type Output = usize;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.hash.update([byte]);
        self.len += 1;
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.hash.update(bytes);
        self.len += bytes.len();
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_that_of_the_encoded_bytes() {
        let value = (7u64, "a product", vec![("colorid", "red"); 40], -3i32, Some(1u8));
        let bytes = postcard::to_stdvec(&value).expect("encode");
        let mut streamed = Sha256::new();
        streamed.update(b"before");
        assert_eq!(hash_encoding(&value, &mut streamed).expect("encode"), bytes.len());
        let mut whole = Sha256::new();
        whole.update(b"before");
        whole.update(&bytes);
        assert_eq!(streamed.finalize(), whole.finalize());
    }
}
