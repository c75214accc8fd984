//! Chat templates: the model's own and the built-in ones.

use ember_llama::{apply_chat_template, builtin_templates, ChatMessage, Error};

use crate::common;

#[test]
fn two_turn_chat_carries_gemma_turn_markers() {
    let Some(model) = common::model() else { return };
    let messages = [
        ChatMessage::user("What is the capital of France?"),
        ChatMessage::assistant("Paris."),
        ChatMessage::user("And of Italy?"),
    ];
    // The test GGUF has no template: the model's own one is an error, the named one works.
    assert!(matches!(
        model.apply_chat_template(None, &messages, true),
        Err(Error::NoChatTemplate)
    ));
    let prompt = model
        .apply_chat_template(Some("gemma"), &messages, true)
        .unwrap();
    assert_eq!(
        prompt.matches("<start_of_turn>user\n").count(),
        2,
        "{prompt}"
    );
    assert_eq!(
        prompt.matches("<start_of_turn>model\n").count(),
        2,
        "{prompt}"
    );
    assert_eq!(prompt.matches("<end_of_turn>").count(), 3, "{prompt}");
    assert!(prompt.ends_with("<start_of_turn>model\n"), "{prompt}");
    // The markers are special tokens of this vocabulary.
    let tokens = model.tokenize(&prompt, true, true).unwrap();
    let start = model.tokenize("<start_of_turn>", false, true).unwrap()[0];
    assert_eq!(tokens.iter().filter(|t| **t == start).count(), 4);
}

#[test]
fn unknown_template_is_an_error() {
    assert!(builtin_templates().iter().any(|t| t == "gemma"));
    let err = apply_chat_template("no-such-template", &[ChatMessage::user("hi")], true);
    assert!(matches!(err, Err(Error::ChatTemplate { .. })), "{err:?}");
    let err = apply_chat_template("chatml", &[ChatMessage::user("a\0b")], true);
    assert!(matches!(err, Err(Error::NulByte { .. })), "{err:?}");
}
