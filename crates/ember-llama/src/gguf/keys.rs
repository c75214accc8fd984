//! Metadata keys as llama.cpp looks them up, and the types it reads them with.

use super::value::{Value, ValueType};

/// A key as C code sees it: up to its first NUL.
pub(super) fn raw_key_c(raw: &[u8]) -> &[u8] {
    raw.split(|b| *b == 0).next().unwrap_or_default()
}

/// Keys llama.cpp reads with a fixed type: a wrong type there is an error here.
pub(super) fn check_known_key(key: &str, value: &Value) -> Result<(), String> {
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
