//! Tokenizing and detokenizing, and the UTF-8-safe streaming decoder.

use ember_llama::{Token, TokenDecoder};

use crate::common;

const TEXT: &str = "Grüße aus Köln! 日本語のテキスト, 한국어, Ελληνικά — emoji: 🦀🎉👩‍👩‍👧 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ﷽";

#[test]
fn round_trip_multibyte_and_emoji() {
    let Some(model) = common::model() else { return };
    let tokens = model.tokenize(TEXT, false, false).unwrap();
    assert!(tokens.len() > 10);
    assert_eq!(model.detokenize(&tokens, false, false).unwrap(), TEXT);
    // With BOS added and removed again.
    let with_bos = model.tokenize(TEXT, true, false).unwrap();
    assert_eq!(Some(with_bos[0]), model.special_tokens().bos);
    assert_eq!(model.detokenize(&with_bos, true, false).unwrap(), TEXT);
}

#[test]
fn streamed_pieces_are_valid_utf8_at_every_step() {
    let Some(model) = common::model() else { return };
    let tokens = model.tokenize(TEXT, false, false).unwrap();
    let mut decoder = TokenDecoder::new();
    let mut streamed = String::new();
    let mut split_pieces = 0;
    for &t in &tokens {
        let bytes = model.token_to_piece(t, false).unwrap();
        if std::str::from_utf8(&bytes).is_err() {
            split_pieces += 1;
        }
        streamed.push_str(&decoder.push(&bytes));
        // Never a replacement character, always a prefix of the text.
        assert!(TEXT.starts_with(&streamed), "{streamed:?} is not a prefix");
    }
    streamed.push_str(&decoder.finish());
    assert_eq!(streamed, TEXT);
    assert!(
        split_pieces > 0,
        "no token split a character: the test proves nothing"
    );
}

#[test]
fn decoder_fed_byte_by_byte() {
    let mut decoder = TokenDecoder::new();
    let mut out = String::new();
    for b in TEXT.bytes() {
        out.push_str(&decoder.push(&[b]));
        assert!(TEXT.starts_with(&out));
    }
    assert!(!decoder.has_pending());
    assert_eq!(out, TEXT);
    // Invalid bytes become U+FFFD; a cut character at the end too.
    assert_eq!(decoder.push(&[b'a', 0xFF, b'b']), "a\u{FFFD}b");
    assert_eq!(decoder.push(&[0xF0, 0x9F]), "");
    assert_eq!(decoder.finish(), "\u{FFFD}");
}

#[test]
fn special_tokens_parse_only_when_asked() {
    let Some(model) = common::model() else { return };
    let parsed = model.tokenize("<start_of_turn>", false, true).unwrap();
    assert_eq!(parsed.len(), 1);
    let plain = model.tokenize("<start_of_turn>", false, false).unwrap();
    assert!(plain.len() > 1);
    assert_eq!(
        model.token_to_piece(parsed[0], true).unwrap(),
        b"<start_of_turn>"
    );
    assert_eq!(
        model.token_to_piece(Token(parsed[0].0), false).unwrap(),
        b""
    );
}
