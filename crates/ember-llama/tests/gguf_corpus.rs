//! A GGUF writer and the corpus of damaged GGUF files that bad_input feeds the loader.

use std::path::Path;

/// A GGUF writer for the damaged-file corpus.
#[derive(Clone, Default)]
struct Gguf {
    bytes: Vec<u8>,
}

impl Gguf {
    fn u32(mut self, v: u32) -> Self {
        self.bytes.extend(v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.bytes.extend(v.to_le_bytes());
        self
    }
    fn raw(mut self, b: &[u8]) -> Self {
        self.bytes.extend(b);
        self
    }
    fn str(self, s: &str) -> Self {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        Gguf::default()
            .raw(b"GGUF")
            .u32(version)
            .u64(n_tensors)
            .u64(n_kv)
    }
    fn kv_str(self, k: &str, v: &str) -> Self {
        self.str(k).u32(8).str(v)
    }
    fn kv_u32(self, k: &str, v: u32) -> Self {
        self.str(k).u32(4).u32(v)
    }
    /// A 1-D f32 tensor of `n` elements at data offset `offset`.
    fn tensor(self, name: &str, n: u64, ty: u32, offset: u64) -> Self {
        self.str(name).u32(1).u64(n).u32(ty).u64(offset)
    }
    /// Pads to 32 bytes and appends `n` zero bytes of tensor data.
    fn data(mut self, n: usize) -> Self {
        while self.bytes.len() % 32 != 0 {
            self.bytes.push(0);
        }
        self.bytes.extend(std::iter::repeat_n(0u8, n));
        self
    }
}

/// A structurally valid GGUF (2 keys, 1 tensor) that is not a usable model.
fn valid() -> Gguf {
    Gguf::header(3, 1, 2)
        .kv_str("general.architecture", "llama")
        .kv_u32("general.alignment", 32)
        .tensor("token_embd.weight", 8, 0, 0)
        .data(32)
}

pub(crate) fn corpus(real_model: Option<&Path>) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), vec![]),
        ("three bytes".into(), b"GGU".to_vec()),
        (
            "bad magic".into(),
            Gguf::default().raw(b"GGUX").u32(3).u64(0).u64(0).bytes,
        ),
        ("version 1".into(), Gguf::header(1, 0, 0).bytes),
        ("version 999".into(), Gguf::header(999, 0, 0).bytes),
        (
            "absurd tensor count".into(),
            Gguf::header(3, u64::MAX, 0).bytes,
        ),
        ("absurd key count".into(), Gguf::header(3, 0, 1 << 60).bytes),
        (
            "absurd key length".into(),
            Gguf::header(3, 0, 1).u64(u64::MAX - 3).bytes,
        ),
        (
            "unknown value type".into(),
            Gguf::header(3, 0, 1).str("general.x").u32(99).u32(0).bytes,
        ),
        (
            "architecture as u32".into(),
            Gguf::header(3, 0, 1)
                .kv_u32("general.architecture", 7)
                .bytes,
        ),
        (
            "alignment as string".into(),
            Gguf::header(3, 0, 1)
                .kv_str("general.alignment", "32")
                .bytes,
        ),
        (
            "alignment 3".into(),
            Gguf::header(3, 0, 1).kv_u32("general.alignment", 3).bytes,
        ),
        (
            "tokens as u32 array".into(),
            Gguf::header(3, 0, 1)
                .str("tokenizer.ggml.tokens")
                .u32(9)
                .u32(4)
                .u64(2)
                .u32(1)
                .u32(2)
                .bytes,
        ),
        (
            "nested array".into(),
            Gguf::header(3, 0, 1)
                .str("general.tags")
                .u32(9)
                .u32(9)
                .u64(1)
                .u32(4)
                .u64(0)
                .bytes,
        ),
        (
            "absurd array length".into(),
            Gguf::header(3, 0, 1)
                .str("general.tags")
                .u32(9)
                .u32(4)
                .u64(u64::MAX)
                .bytes,
        ),
        (
            "scores shorter than tokens".into(),
            Gguf::header(3, 0, 2)
                .str("tokenizer.ggml.tokens")
                .u32(9)
                .u32(8)
                .u64(2)
                .str("a")
                .str("b")
                .str("tokenizer.ggml.scores")
                .u32(9)
                .u32(6)
                .u64(1)
                .u32(0)
                .bytes,
        ),
        (
            "duplicate key".into(),
            Gguf::header(3, 0, 2)
                .kv_str("general.name", "a")
                .kv_str("general.name", "b")
                .bytes,
        ),
        (
            "tensor with 9 dimensions".into(),
            Gguf::header(3, 1, 0)
                .str("t")
                .u32(9)
                .u64(1)
                .u64(1)
                .u64(1)
                .u64(1)
                .u64(1)
                .u64(1)
                .u64(1)
                .u64(1)
                .u64(1)
                .u32(0)
                .u64(0)
                .data(32)
                .bytes,
        ),
        (
            "tensor type 999".into(),
            Gguf::header(3, 1, 0).tensor("t", 8, 999, 0).data(64).bytes,
        ),
        (
            "tensor data out of range".into(),
            Gguf::header(3, 1, 0)
                .tensor("t", 8, 0, 1 << 40)
                .data(32)
                .bytes,
        ),
        (
            "tensor data past the end".into(),
            Gguf::header(3, 1, 0).tensor("t", 1024, 0, 0).data(32).bytes,
        ),
        (
            "misaligned tensor offset".into(),
            Gguf::header(3, 1, 0).tensor("t", 8, 0, 3).data(64).bytes,
        ),
        (
            "tensor element count overflow".into(),
            Gguf::header(3, 1, 0)
                .str("t")
                .u32(2)
                .u64(1 << 40)
                .u64(1 << 40)
                .u32(0)
                .u64(0)
                .data(32)
                .bytes,
        ),
        (
            "q4_0 row not a block multiple".into(),
            Gguf::header(3, 1, 0).tensor("t", 7, 2, 0).data(64).bytes,
        ),
        (
            "duplicate tensor".into(),
            Gguf::header(3, 2, 0)
                .tensor("t", 8, 0, 0)
                .tensor("t", 8, 0, 32)
                .data(64)
                .bytes,
        ),
        (
            "tensors not packed in order".into(),
            Gguf::header(3, 2, 0)
                .tensor("a", 8, 0, 0)
                .tensor("b", 8, 0, 64)
                .data(128)
                .bytes,
        ),
        (
            "tensor with no elements".into(),
            Gguf::header(3, 1, 0).tensor("t", 0, 0, 0).data(0).bytes,
        ),
        (
            "tensor with no dimensions".into(),
            Gguf::header(3, 1, 0)
                .str("t")
                .u32(0)
                .u32(0)
                .u64(0)
                .data(32)
                .bytes,
        ),
        (
            // Found by the gguf fuzz target: 57 bytes, but 63+ as lossy UTF-8.
            "tensor name of 57 bytes of invalid UTF-8".into(),
            Gguf::header(3, 1, 0)
                .u64(57)
                .raw(&[0xff; 57])
                .u32(1)
                .u64(8)
                .u32(0)
                .u64(0)
                .data(32)
                .bytes,
        ),
        (
            "two keys that differ only in invalid UTF-8".into(),
            Gguf::header(3, 0, 2)
                .u64(2)
                .raw(&[b'k', 0xfe])
                .u32(4)
                .u32(1)
                .u64(2)
                .raw(&[b'k', 0xff])
                .u32(4)
                .u32(2)
                .bytes,
        ),
        (
            // Found by the gguf fuzz target: ggml finds keys with strcmp.
            "alignment as a string behind a NUL".into(),
            Gguf::header(3, 0, 1)
                .kv_str("general.alignment\0\0\0", "")
                .bytes,
        ),
        (
            "a second alignment behind a NUL is never read".into(),
            Gguf::header(3, 0, 2)
                .kv_u32("general.alignment", 32)
                .kv_str("general.alignment\0x", "no")
                .bytes,
        ),
        ("valid structure, not a model".into(), valid().bytes),
    ];
    // The valid file truncated at every 5th offset.
    let whole = valid().bytes;
    for cut in (1..whole.len()).step_by(5) {
        files.push((
            format!("synthetic truncated at {cut}"),
            whole[..cut].to_vec(),
        ));
    }
    // The real model truncated inside its header, metadata and tensor directory.
    if let Some(path) = real_model {
        use std::io::Read;
        let mut head = Vec::new();
        std::fs::File::open(path)
            .unwrap()
            .take(8 << 20)
            .read_to_end(&mut head)
            .unwrap();
        for cut in [
            4,
            8,
            20,
            24,
            100,
            4_096,
            65_536,
            1 << 20,
            3 << 20,
            6 << 20,
            8 << 20,
        ] {
            if cut <= head.len() {
                files.push((
                    format!("real model truncated at {cut}"),
                    head[..cut].to_vec(),
                ));
            }
        }
        // Its header with a flipped tensor count.
        let mut flipped = head[..1 << 20].to_vec();
        flipped[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        files.push(("real model, absurd tensor count".into(), flipped));
    }
    files
}
