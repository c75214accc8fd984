//! A bounds-checked little-endian reader over the file, with llama.cpp's string and array
//! limits.

use std::fs::File;
use std::io::{BufReader, Read};

use super::value::{lossy, Value, ValueType};

/// llama.cpp's longest string and largest array (`GGUF_MAX_STRING_LENGTH`, `..._ARRAY_ELEMENTS`).
const MAX_STRING: u64 = 1 << 30;
const MAX_ARRAY: u64 = 1 << 30;

pub(super) struct Reader {
    pub(super) inner: BufReader<File>,
    pub(super) pos: u64,
    pub(super) len: u64,
}

impl Reader {
    pub(super) fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    pub(super) fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, String> {
        if n > self.remaining() {
            return Err(format!(
                "{what} at offset {} needs {n} bytes, only {} left",
                self.pos,
                self.remaining()
            ));
        }
        let mut buf = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| format!("reading {what} at offset {}: {e}", self.pos))?;
        self.pos += n;
        Ok(buf)
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), String> {
        if n > self.remaining() {
            return Err(format!(
                "{what} at offset {} needs {n} bytes, only {} left",
                self.pos,
                self.remaining()
            ));
        }
        // `n` is at most the bytes left in the file, so it fits i64.
        self.inner
            .seek_relative(n as i64)
            .map_err(|e| format!("reading {what} at offset {}: {e}", self.pos))?;
        self.pos += n;
        Ok(())
    }

    fn fixed<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        if N as u64 > self.remaining() {
            return Err(format!(
                "{what} at offset {} needs {N} bytes, only {} left",
                self.pos,
                self.remaining()
            ));
        }
        let mut buf = [0u8; N];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| format!("reading {what} at offset {}: {e}", self.pos))?;
        self.pos += N as u64;
        Ok(buf)
    }

    pub(super) fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.fixed(what)?))
    }

    pub(super) fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.fixed(what)?))
    }

    /// A string's bytes. llama.cpp keeps strings as bytes, so lengths and duplicates are
    /// judged on the bytes: a lossy UTF-8 copy is longer (U+FFFD is 3 bytes) and can make two
    /// different names equal.
    pub(super) fn string(&mut self, what: &str) -> Result<Vec<u8>, String> {
        let at = self.pos;
        let n = self.u64(what)?;
        if n > MAX_STRING {
            return Err(format!("{what} at offset {at} has absurd length {n}"));
        }
        self.bytes(n, what)
    }

    /// Skips a string without keeping it (vocabularies hold hundreds of thousands).
    fn skip_string(&mut self, what: &str) -> Result<(), String> {
        let at = self.pos;
        let n = self.u64(what)?;
        if n > MAX_STRING {
            return Err(format!("{what} at offset {at} has absurd length {n}"));
        }
        self.skip(n, what)
    }

    pub(super) fn value(&mut self, ty: ValueType, key: &str) -> Result<Value, String> {
        if let Some(size) = ty.size() {
            let b = self.bytes(size, key)?;
            let mut a = [0u8; 8];
            a[..b.len()].copy_from_slice(&b);
            return Ok(Value::Scalar(ty, u64::from_le_bytes(a)));
        }
        if ty == ValueType::String {
            return Ok(Value::Str(lossy(&self.string(key)?)));
        }
        let at = self.pos;
        let tag = self.u32(key)?;
        let elem = ValueType::from_tag(tag).ok_or_else(|| {
            format!("array `{key}` at offset {at} has unknown element type {tag}")
        })?;
        let n = self.u64(key)?;
        if n > MAX_ARRAY {
            return Err(format!(
                "array `{key}` at offset {at} has absurd length {n}"
            ));
        }
        match elem {
            ValueType::Array => {
                return Err(format!("array `{key}` at offset {at} nests arrays"));
            }
            ValueType::String => {
                // Each string needs at least its 8-byte length.
                if n.saturating_mul(8) > self.remaining() {
                    return Err(format!(
                        "array `{key}` at offset {at}: {n} strings cannot fit in {} bytes",
                        self.remaining()
                    ));
                }
                for _ in 0..n {
                    self.skip_string(key)?;
                }
            }
            scalar => {
                let size = scalar.size().unwrap_or(1);
                self.skip(n.saturating_mul(size), key)?;
            }
        }
        Ok(Value::Array(elem, n))
    }
}
