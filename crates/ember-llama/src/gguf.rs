//! A bounds-checked reader of a GGUF file's header, metadata and tensor directory.
//!
//! llama.cpp's own parser handles most damaged files, but some damage reaches a
//! `GGML_ASSERT` (which aborts the process) or reads past an array. [`validate`] checks
//! the structure in safe Rust first: every length against the bytes left in the file, every
//! type tag, the keys llama.cpp reads with fixed types, and every tensor's data range.
//! [`Model::load`](crate::Model::load) runs it before handing the path to llama.cpp.
//!
//! Its container rules are ggml's own (`gguf_init_from_file`): tensors packed in directory
//! order, names under 64 bytes, 0 to 4 dimensions, and so on. A differential test and the
//! `gguf` fuzz target hold the two parsers to the same answer on the same bytes, both ways.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use ember_llama_sys as sys;

use crate::error::{Error, Result};

/// `GGUF` in little-endian order.
const MAGIC: [u8; 4] = *b"GGUF";
/// llama.cpp's longest tensor name (`GGML_MAX_NAME` includes the NUL).
const MAX_NAME: u64 = 63;
/// llama.cpp's longest string and largest array (`GGUF_MAX_STRING_LENGTH`, `..._ARRAY_ELEMENTS`).
const MAX_STRING: u64 = 1 << 30;
const MAX_ARRAY: u64 = 1 << 30;
/// Default data alignment when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: u64 = 32;

/// GGUF value type tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    fn from_tag(tag: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match tag {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Size of one scalar value; `None` for strings and arrays.
    fn size(self) -> Option<u64> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    fn is_integer(self) -> bool {
        use ValueType::*;
        matches!(self, U8 | I8 | U16 | I16 | U32 | I32 | U64 | I64)
    }
}

/// What [`validate`] learnt about a file.
#[derive(Clone, Debug)]
pub struct GgufSummary {
    /// GGUF version (2 or 3).
    pub version: u32,
    /// Number of metadata keys.
    pub n_kv: u64,
    /// Number of tensors.
    pub n_tensors: u64,
    /// `general.architecture`, if present.
    pub architecture: Option<String>,
}

/// One metadata value, as much as the checks need.
enum Value {
    Scalar(ValueType, u64),
    Str(String),
    Array(ValueType, u64),
}

struct Reader {
    inner: BufReader<File>,
    pos: u64,
    len: u64,
}

impl Reader {
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, String> {
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

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.fixed(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.fixed(what)?))
    }

    /// A string's bytes. llama.cpp keeps strings as bytes, so lengths and duplicates are
    /// judged on the bytes: a lossy UTF-8 copy is longer (U+FFFD is 3 bytes) and can make two
    /// different names equal.
    fn string(&mut self, what: &str) -> Result<Vec<u8>, String> {
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

    fn value(&mut self, ty: ValueType, key: &str) -> Result<Value, String> {
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

/// Which rules [`check`] applies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rules {
    /// Exactly those of ggml's parser (`gguf_init_from_file` with `no_alloc`, no tensor data
    /// read): the container alone.
    Ggml,
    /// Those, plus what llama.cpp's loader needs: every tensor with at least one dimension and
    /// one element, its data inside the file, the keys llama.cpp reads with fixed types, and
    /// vocabulary arrays as long as the token list.
    Llama,
}

/// Checks that `path` is a GGUF file llama.cpp can parse without tripping an assertion.
///
/// # Errors
///
/// [`Error::ModelFile`] when the file cannot be opened, [`Error::InvalidGguf`] naming the
/// first problem (with its byte offset) otherwise.
pub fn validate(path: &Path) -> Result<GgufSummary> {
    validate_with(path, Rules::Llama)
}

/// [`validate`] with ggml's container rules only: accepts exactly the files ggml's own
/// `gguf_init_from_file` accepts when it reads no tensor data. The differential tests and the
/// `gguf` fuzz target hold the two parsers to that; [`validate`] is this plus the rules of
/// llama.cpp's loader.
///
/// # Errors
///
/// As [`validate`].
#[doc(hidden)]
pub fn validate_container(path: &Path) -> Result<GgufSummary> {
    validate_with(path, Rules::Ggml)
}

/// Whether ggml's own parser (`gguf_init_from_file`, no tensor data read) accepts the file:
/// the other side of the differential tests and the `gguf` fuzz target.
#[doc(hidden)]
pub fn ggml_accepts(path: &Path) -> bool {
    let Some(c_path) = path.to_str().and_then(|p| std::ffi::CString::new(p).ok()) else {
        return false;
    };
    let params = sys::gguf_init_params {
        no_alloc: true,
        ctx: std::ptr::null_mut(),
    };
    // SAFETY: a NUL-terminated path; no_alloc with no ggml context to fill.
    let ctx = unsafe { sys::gguf_init_from_file(c_path.as_ptr(), params) };
    if ctx.is_null() {
        return false;
    }
    // SAFETY: a context gguf_init_from_file returned, freed once.
    unsafe { sys::gguf_free(ctx) };
    true
}

fn validate_with(path: &Path, rules: Rules) -> Result<GgufSummary> {
    let file = File::open(path).map_err(|error| Error::ModelFile {
        path: path.to_path_buf(),
        error,
    })?;
    let len = file
        .metadata()
        .map_err(|error| Error::ModelFile {
            path: path.to_path_buf(),
            error,
        })?
        .len();
    if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(Error::InvalidGguf {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    let mut reader = Reader {
        inner: BufReader::with_capacity(1 << 16, file),
        pos: 0,
        len,
    };
    check(&mut reader, rules).map_err(|reason| Error::InvalidGguf {
        path: path.to_path_buf(),
        reason,
    })
}

fn check(r: &mut Reader, rules: Rules) -> Result<GgufSummary, String> {
    let llama = rules == Rules::Llama;
    let magic = r.bytes(4, "magic")?;
    if magic != MAGIC {
        return Err(format!("bad magic {magic:02x?}, expected \"GGUF\""));
    }
    let version = r.u32("version")?;
    if version != 2 && version != 3 {
        return Err(format!("unsupported GGUF version {version} (2 and 3 are)"));
    }
    let n_tensors = r.u64("tensor count")?;
    let n_kv = r.u64("metadata count")?;
    // A key/value takes at least 8 (key length) + 1 (key) + 4 (type) + 1 bytes; a tensor
    // entry at least 8 (name length) + 4 (dimensions) + 4 (type) + 8 (offset).
    if n_kv.saturating_mul(13) > r.remaining() {
        return Err(format!(
            "absurd metadata count {n_kv} for a file of {} bytes",
            r.len
        ));
    }
    if n_tensors.saturating_mul(24) > r.remaining() {
        return Err(format!(
            "absurd tensor count {n_tensors} for a file of {} bytes",
            r.len
        ));
    }

    let mut keys = HashSet::new();
    let mut looked_up = HashSet::new();
    let mut alignment = DEFAULT_ALIGNMENT;
    let mut architecture = None;
    let mut n_vocab = None;
    let mut vocab_arrays = Vec::new();
    for _ in 0..n_kv {
        let at = r.pos;
        let raw_key = r.string("metadata key")?;
        let key = lossy(&raw_key);
        if raw_key.is_empty() {
            return Err(format!("empty metadata key at offset {at}"));
        }
        if !keys.insert(raw_key.clone()) {
            return Err(format!("duplicate metadata key `{key}` at offset {at}"));
        }
        let tag = r.u32(&key)?;
        let ty = ValueType::from_tag(tag)
            .ok_or_else(|| format!("metadata `{key}` at offset {at} has unknown type {tag}"))?;
        let value = r.value(ty, &key)?;
        // ggml and llama.cpp look keys up as C strings (`strcmp`), and take the first match:
        // `general.alignment\0x` is general.alignment, and a second one is never read.
        let c_key = lossy(raw_key_c(&raw_key));
        if !looked_up.insert(c_key.clone()) {
            continue;
        }
        // ggml itself checks the type of general.alignment only.
        if llama || c_key == "general.alignment" {
            check_known_key(&c_key, &value)?;
        }
        match (c_key.as_str(), &value) {
            ("general.alignment", Value::Scalar(ValueType::U32, v)) => {
                if *v == 0 || !v.is_power_of_two() {
                    return Err(format!("general.alignment {v} is not a power of two"));
                }
                alignment = *v;
            }
            ("general.architecture", Value::Str(s)) => architecture = Some(s.clone()),
            ("tokenizer.ggml.tokens", Value::Array(_, n)) => n_vocab = Some(*n),
            (k, Value::Array(_, n))
                if k == "tokenizer.ggml.scores" || k == "tokenizer.ggml.token_type" =>
            {
                vocab_arrays.push((key.clone(), *n));
            }
            _ => {}
        }
    }
    if let Some(n_vocab) = n_vocab.filter(|_| llama) {
        for (key, n) in vocab_arrays {
            if n < n_vocab {
                return Err(format!("`{key}` has {n} entries for {n_vocab} tokens"));
            }
        }
    }

    let mut names = HashSet::new();
    let mut tensors = Vec::new();
    // ggml wants the tensors' data packed in directory order, each padded to the alignment.
    let mut packed_end: u64 = 0;
    for _ in 0..n_tensors {
        let at = r.pos;
        let raw_name = r.string("tensor name")?;
        let name = lossy(&raw_name);
        if raw_name.len() as u64 > MAX_NAME {
            return Err(format!(
                "tensor name at offset {at} is longer than {MAX_NAME} bytes"
            ));
        }
        if !names.insert(raw_name) {
            return Err(format!("duplicate tensor `{name}` at offset {at}"));
        }
        let n_dims = r.u32(&name)?;
        if n_dims > 4 || (llama && n_dims == 0) {
            return Err(format!(
                "tensor `{name}` has {n_dims} dimensions (1 to 4 allowed)"
            ));
        }
        let mut n_elements: u64 = 1;
        let mut ne0 = 1;
        for d in 0..n_dims {
            let dim = r.u64(&name)?;
            if dim > i64::MAX as u64 || (llama && dim == 0) {
                return Err(format!("tensor `{name}` has dimension {d} of size {dim}"));
            }
            if d == 0 {
                ne0 = dim;
            }
            n_elements = n_elements
                .checked_mul(dim)
                .filter(|n| *n <= i64::MAX as u64)
                .ok_or_else(|| format!("tensor `{name}` has too many elements"))?;
        }
        let ty = r.u32(&name)?;
        let bytes = tensor_bytes(ty, ne0, n_elements)
            .ok_or_else(|| format!("tensor `{name}` has invalid type {ty} for its shape"))?;
        let offset = r.u64(&name)?;
        if offset % alignment != 0 {
            return Err(format!(
                "tensor `{name}` data offset {offset} is not aligned to {alignment}"
            ));
        }
        if offset != packed_end {
            return Err(format!(
                "tensor `{name}` data offset {offset} is not where the tensor before it ends \
                 ({packed_end}): ggml wants the data packed in directory order"
            ));
        }
        packed_end = bytes
            .checked_next_multiple_of(alignment)
            .and_then(|padded| packed_end.checked_add(padded))
            .ok_or_else(|| format!("tensor `{name}` data size {bytes} overflows"))?;
        tensors.push((name, offset, bytes));
    }

    let data_start = r.pos.div_ceil(alignment).saturating_mul(alignment);
    // ggml seeks to the data section only when there are tensors.
    if (llama || n_tensors > 0) && data_start > r.len {
        return Err(format!(
            "tensor data would start at {data_start}, past the end of the file ({})",
            r.len
        ));
    }
    let data_len = r.len.saturating_sub(data_start);
    for (name, offset, bytes) in tensors.iter().filter(|_| llama) {
        let end = offset.checked_add(*bytes);
        if end.is_none_or(|end| end > data_len) {
            return Err(format!(
                "tensor `{name}` data [{offset}, +{bytes}) is outside the {data_len} data bytes"
            ));
        }
    }
    Ok(GgufSummary {
        version,
        n_kv,
        n_tensors,
        architecture,
    })
}

/// A key as C code sees it: up to its first NUL.
fn raw_key_c(raw: &[u8]) -> &[u8] {
    raw.split(|b| *b == 0).next().unwrap_or_default()
}

/// A string for messages and for matching known keys (invalid UTF-8 never matches one).
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Bytes of a tensor of `ty` with `n_elements` elements and rows of `ne0`.
fn tensor_bytes(ty: u32, ne0: u64, n_elements: u64) -> Option<u64> {
    if ty >= sys::ggml_type_GGML_TYPE_COUNT {
        return None;
    }
    // SAFETY: `ty` is below GGML_TYPE_COUNT, so both functions only read ggml's static
    // type-traits table at that index.
    let (block, size) = unsafe { (sys::ggml_blck_size(ty), sys::ggml_type_size(ty)) };
    let block = u64::try_from(block).ok().filter(|b| *b > 0)?;
    let size = size as u64;
    if size == 0 || ne0 % block != 0 {
        return None;
    }
    (n_elements / block).checked_mul(size)
}

/// Keys llama.cpp reads with a fixed type: a wrong type there is an error here.
fn check_known_key(key: &str, value: &Value) -> Result<(), String> {
    let wrong = |want: &str| Err(format!("metadata `{key}` should be {want}"));
    match key {
        "general.alignment" => match value {
            Value::Scalar(ValueType::U32, _) => Ok(()),
            _ => wrong("a u32"),
        },
        "general.architecture"
        | "general.name"
        | "tokenizer.ggml.model"
        | "tokenizer.ggml.pre"
        | "tokenizer.chat_template" => match value {
            Value::Str(_) => Ok(()),
            _ => wrong("a string"),
        },
        "tokenizer.ggml.tokens" | "tokenizer.ggml.merges" => match value {
            Value::Array(ValueType::String, _) => Ok(()),
            _ => wrong("an array of strings"),
        },
        "tokenizer.ggml.scores" => match value {
            Value::Array(ValueType::F32 | ValueType::I32, _) => Ok(()),
            _ => wrong("an array of f32"),
        },
        "tokenizer.ggml.token_type" => match value {
            Value::Array(ValueType::I32, _) => Ok(()),
            _ => wrong("an array of i32"),
        },
        _ if key.ends_with("_token_id")
            || key.ends_with(".context_length")
            || key.ends_with(".embedding_length")
            || key.ends_with(".block_count") =>
        {
            match value {
                Value::Scalar(ty, _) if ty.is_integer() => Ok(()),
                Value::Array(ty, _) if ty.is_integer() && key.ends_with(".block_count") => Ok(()),
                _ => wrong("an integer"),
            }
        }
        _ => Ok(()),
    }
}
