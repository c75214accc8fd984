//! Unit tests of ember-llama-sys' build-time check (`build/symcheck.rs`): the renamed
//! archives pass; one symbol left global, one COMDAT group left unprefixed, or one reference
//! left to an unprefixed name, fails.

use std::collections::BTreeSet;

use crate::symcheck::check_archives;

const DEFINED: &str = "\
libember-llama.a[llama.cpp.o]:
ember_llama_decode T 0 10
ember__ZN11llama_vocab4loadEv W 10 10
ember_dequantize_row_q4_0 T 20 10
libember_shim.a[ember_shim.cpp.o]:
ember_decode T 0 10
";

const GROUPS: &str = "\
File: libember-llama.a(llama.cpp.o)

COMDAT group section [    1] `.group' [ember__ZN11llama_vocab4loadEv] contains 1 sections:
   [Index]    Name
   [    5]   .text.ember__ZN11llama_vocab4loadEv

COMDAT group section [    2] `.group' [ember__ZN11llama_modelD5Ev] contains 2 sections:
";

const UNDEFINED: &str = "\
libember-llama.a[llama.cpp.o]:
ember_ggml_init U
memcpy U
_Znwm U
__gxx_personality_v0 U
";

fn originals() -> BTreeSet<String> {
    [
        "llama_decode",
        "_ZN11llama_vocab4loadEv",
        "dequantize_row_q4_0",
        "ggml_init",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn renamed_archives_pass() {
    assert_eq!(
        check_archives("ember_", DEFINED, GROUPS, UNDEFINED, &originals()),
        Ok(4)
    );
}

#[test]
fn one_symbol_left_global_fails() {
    let defined = DEFINED.replace("ember_dequantize_row_q4_0", "dequantize_row_q4_0");
    let err = check_archives("ember_", &defined, GROUPS, UNDEFINED, &originals()).unwrap_err();
    assert!(
        err.contains("1 symbol(s) are still global") && err.contains("dequantize_row_q4_0"),
        "{err}"
    );
}

#[test]
fn a_reference_left_unrenamed_fails() {
    // To a name ember defined before renaming, and to an unprefixed ggml name it never had.
    for name in ["ggml_init", "gguf_get_val_str"] {
        let undefined = format!("{UNDEFINED}{name} U\n");
        let err = check_archives("ember_", DEFINED, GROUPS, &undefined, &originals()).unwrap_err();
        assert!(err.contains(name) && err.contains("left open"), "{err}");
    }
}

#[test]
fn an_unprefixed_comdat_group_fails() {
    let groups = GROUPS.replace("[ember__ZN11llama_modelD5Ev]", "[_ZN11llama_modelD5Ev]");
    let err = check_archives("ember_", DEFINED, &groups, UNDEFINED, &originals()).unwrap_err();
    assert!(
        err.contains("1 COMDAT group(s)") && err.contains("_ZN11llama_modelD5Ev"),
        "{err}"
    );
}
