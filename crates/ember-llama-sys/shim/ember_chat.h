// SPDX-License-Identifier: MIT OR Apache-2.0
/* ember's door to llama.cpp's `common` library (feature `chat`): the model's Jinja chat
 * template, the per-family tool-call and reasoning parsers, the tool-call grammars and JSON
 * Schema -> GBNF, exactly as llama-server uses them. The C++ side speaks JSON (nlohmann, through
 * common's own conversions), so this surface stays a handful of functions over strings.
 *
 * Every function returns EMBER_OK, or EMBER_EXCEPTION with the exception's what() in `err`
 * (see ember_shim.h). Strings returned in `*out` are malloc'd: free them with
 * ember_chat_string_free. */
#ifndef EMBER_CHAT_H
#define EMBER_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "ember_shim.h"
#include "llama.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ember_chat_templates;

/* The model's chat templates (`tokenizer.chat_template` and its named variants), or
 * `tmpl_override` when it is not NULL or empty: Jinja source, or the name of one of
 * llama.cpp's built-in templates. */
int ember_chat_templates_init(const struct llama_model * model, const char * tmpl_override,
                              struct ember_chat_templates ** out, char * err, size_t err_len);

void ember_chat_templates_free(struct ember_chat_templates * tmpls);

/* JSON object: `source` (the default template's text), `tool_use_source` (or null),
 * `caps` (the template's capabilities), `supports_thinking`. */
int ember_chat_templates_info(const struct ember_chat_templates * tmpls, char ** out, char * err,
                              size_t err_len);

/* An OpenAI chat request (`request_json`: messages, tools, tool_choice, response_format,
 * json_schema, grammar, parallel_tool_calls, add_generation_prompt, continue_final_message,
 * reasoning_format, reasoning_effort, chat_template_kwargs) with the server's options
 * (`options_json`: use_jinja, prefill_assistant, reasoning_format, enable_thinking,
 * chat_template_kwargs) rendered into the prompt and the generation settings llama-server
 * derives from it (JSON object: prompt, chat_format, grammar, grammar_lazy, grammar_triggers,
 * preserved_tokens, stop, parse_tool_calls, chat_parser, generation_prompt, ...). Invalid
 * requests throw std::invalid_argument (an HTTP 400). */
int ember_chat_templates_apply(const struct ember_chat_templates * tmpls,
                               const char * request_json, const char * options_json, char ** out,
                               char * err, size_t err_len);

struct ember_chat_parser;

/* The output parser of the settings `params_json` (chat_format, chat_parser,
 * generation_prompt, reasoning_format, parse_tool_calls, is_continuation: what
 * ember_chat_templates_apply returns), read once: a stream parses its text on every chunk. */
int ember_chat_parser_init(const char * params_json, struct ember_chat_parser ** out, char * err,
                           size_t err_len);

void ember_chat_parser_free(struct ember_chat_parser * parser);

/* Parses generated `text` into an OpenAI assistant message (content, reasoning_content,
 * tool_calls). With `is_partial` the text may stop anywhere (streaming). */
int ember_chat_parser_parse(const struct ember_chat_parser * parser, const char * text,
                            size_t text_len, bool is_partial, char ** out, char * err,
                            size_t err_len);

/* The grammar sampler llama-server's sampling builds for `params_json` (grammar,
 * grammar_lazy, grammar_triggers, preserved_tokens): a lazy grammar with its trigger patterns
 * and tokens, or a plain one. `*out` is NULL when there is no grammar. */
int ember_chat_grammar_sampler(const struct llama_vocab * vocab, const char * params_json,
                               struct llama_sampler ** out, char * err, size_t err_len);

/* The tokens of the generation prompt (`generation_prompt`) that a tool-call or output-format
 * grammar starts with, to be accepted by that grammar after each reset, as llama-server's
 * sampling does (the template already wrote them into the prompt). Writes at most `capacity`
 * tokens and sets `*n_tokens` to how many there are (call again with more room when larger). */
int ember_chat_grammar_prefill(const struct llama_vocab * vocab, const char * params_json,
                               llama_token * tokens, size_t capacity, size_t * n_tokens,
                               char * err, size_t err_len);

/* JSON Schema (`schema_json`) -> GBNF grammar, with llama.cpp's json-schema-to-grammar. */
int ember_json_schema_to_grammar(const char * schema_json, char ** out, char * err,
                                 size_t err_len);

void ember_chat_string_free(char * s);

#ifdef __cplusplus
}
#endif

#endif /* EMBER_CHAT_H */
