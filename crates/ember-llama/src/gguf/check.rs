//! The structural check of a whole file: header, metadata, tensor directory and tensor
//! data ranges, under ggml's or llama.cpp's rules.

use std::collections::HashSet;

use ember_llama_sys as sys;

use super::keys::{check_known_key, raw_key_c};
use super::reader::Reader;
use super::value::{lossy, Value, ValueType};
use super::GgufSummary;

/// `GGUF` in little-endian order.
const MAGIC: [u8; 4] = *b"GGUF";
/// llama.cpp's longest tensor name (`GGML_MAX_NAME` includes the NUL).
const MAX_NAME: u64 = 63;
/// Default data alignment when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: u64 = 32;

/// Which rules [`check`] applies.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Rules {
    /// Exactly those of ggml's parser (`gguf_init_from_file` with `no_alloc`, no tensor data
    /// read): the container alone.
    Ggml,
    /// Those, plus what llama.cpp's loader needs: every tensor with at least one dimension and
    /// one element, its data inside the file, the keys llama.cpp reads with fixed types, and
    /// vocabulary arrays as long as the token list.
    Llama,
}

pub(super) fn check(r: &mut Reader, rules: Rules) -> Result<GgufSummary, String> {
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
