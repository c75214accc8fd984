// SPDX-License-Identifier: MIT OR Apache-2.0
/* ember's exception barrier: the llama.cpp entry points that can throw a C++ exception through
 * their C signature (a grammar that rejects every candidate, std::bad_alloc, std::out_of_range
 * from odd input), each wrapped in try/catch. A C++ exception that reaches Rust aborts the
 * process; through these it becomes a status and a message.
 *
 * Every wrapper returns EMBER_OK when the wrapped call returned (its result in `out`), or
 * EMBER_EXCEPTION when it threw, with the exception's what() in `err` (NUL-terminated, cut to
 * `err_len` bytes). */
#ifndef EMBER_SHIM_H
#define EMBER_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include "llama.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EMBER_OK 0
#define EMBER_EXCEPTION 1

int ember_sampler_sample(struct llama_sampler * smpl, struct llama_context * ctx, int32_t idx,
                         llama_token * out, char * err, size_t err_len);

/* llama_sampler_sample for a chain whose first `n_grammar` stages are grammars, as
 * llama-server's sampling does it (common_sampler_sample): the other stages pick a token from
 * the logits; when every grammar accepts that one token it is the answer, else the whole
 * chain runs again, grammars first. The grammars are checked against one candidate instead of
 * the whole vocabulary at most steps. The token is accepted into every stage. */
int ember_sampler_sample_grammar_last(struct llama_sampler * chain, int32_t n_grammar,
                                      struct llama_context * ctx, int32_t idx, llama_token * out,
                                      char * err, size_t err_len);

/* llama_sampler_accept: a grammar stage throws when the token breaks the grammar. */
int ember_sampler_accept(struct llama_sampler * smpl, llama_token token, char * err,
                         size_t err_len);

int ember_sampler_init_grammar(const struct llama_vocab * vocab, const char * grammar_str,
                               const char * grammar_root, struct llama_sampler ** out,
                               char * err, size_t err_len);

int ember_tokenize(const struct llama_vocab * vocab, const char * text, int32_t text_len,
                   llama_token * tokens, int32_t n_tokens_max, bool add_special,
                   bool parse_special, int32_t * out, char * err, size_t err_len);

int ember_token_to_piece(const struct llama_vocab * vocab, llama_token token, char * buf,
                         int32_t length, int32_t lstrip, bool special, int32_t * out,
                         char * err, size_t err_len);

int ember_chat_apply_template(const char * tmpl, const struct llama_chat_message * chat,
                              size_t n_msg, bool add_ass, char * buf, int32_t length,
                              int32_t * out, char * err, size_t err_len);

int ember_decode(struct llama_context * ctx, struct llama_batch batch, int32_t * out, char * err,
                 size_t err_len);

int ember_model_load_from_file(const char * path_model, struct llama_model_params params,
                               struct llama_model ** out, char * err, size_t err_len);

int ember_init_from_model(struct llama_model * model, struct llama_context_params params,
                          struct llama_context ** out, char * err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif
