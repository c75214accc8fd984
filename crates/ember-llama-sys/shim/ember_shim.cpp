// SPDX-License-Identifier: MIT OR Apache-2.0
// The exception barrier declared in ember_shim.h: each wrapper calls one llama.cpp function
// inside try/catch, so that no C++ exception crosses into Rust.
#include "ember_shim.h"

#include <cmath>
#include <stdexcept>
#include <vector>

#include "ember_guard.hpp"

namespace {

// Runs `call`, storing its result in `*out` (see ember_guard.hpp).
template <typename T, typename F> int guarded(T * out, char * err, size_t err_len, F && call) {
    return ember::guarded(err, err_len, [&] { *out = call(); });
}

}  // namespace

extern "C" {

int ember_sampler_sample(llama_sampler * smpl, llama_context * ctx, int32_t idx, llama_token * out,
                         char * err, size_t err_len) {
    return guarded(out, err, err_len, [&] { return llama_sampler_sample(smpl, ctx, idx); });
}

int ember_sampler_sample_grammar_last(llama_sampler * chain, int32_t n_grammar, llama_context * ctx,
                                      int32_t idx, llama_token * out, char * err, size_t err_len) {
    return guarded(out, err, err_len, [&]() -> llama_token {
        const llama_vocab * vocab   = llama_model_get_vocab(llama_get_model(ctx));
        const int32_t       n_vocab = llama_vocab_n_tokens(vocab);
        const int32_t       n_stage = llama_sampler_chain_n(chain);
        const float *       logits  = llama_get_logits_ith(ctx, idx);
        if (logits == nullptr) {
            throw std::runtime_error("no logits at this output index");
        }
        std::vector<llama_token_data> cur(n_vocab);
        auto run = [&](int32_t from) {
            for (llama_token t = 0; t < n_vocab; t++) {
                cur[t] = llama_token_data{ t, logits[t], 0.0f };
            }
            llama_token_data_array arr = { cur.data(), cur.size(), -1, false };
            for (int32_t i = from; i < n_stage; i++) {
                llama_sampler_apply(llama_sampler_chain_get(chain, i), &arr);
            }
            if (arr.selected < 0 || arr.selected >= static_cast<int64_t>(arr.size)) {
                throw std::runtime_error("the sampler chain selected no token");
            }
            return arr.data[arr.selected].id;
        };
        llama_token id = run(n_grammar);
        for (int32_t i = 0; i < n_grammar; i++) {
            llama_token_data       one = { id, 1.0f, 0.0f };
            llama_token_data_array arr = { &one, 1, -1, false };
            llama_sampler_apply(llama_sampler_chain_get(chain, i), &arr);
            if (one.logit == -INFINITY) {
                id = run(0);
                break;
            }
        }
        llama_sampler_accept(chain, id);
        return id;
    });
}

int ember_sampler_accept(llama_sampler * smpl, llama_token token, char * err, size_t err_len) {
    int done = 0;
    return guarded(&done, err, err_len, [&] {
        llama_sampler_accept(smpl, token);
        return 1;
    });
}

int ember_sampler_init_grammar(const llama_vocab * vocab, const char * grammar_str,
                               const char * grammar_root, llama_sampler ** out, char * err,
                               size_t err_len) {
    return guarded(out, err, err_len,
                   [&] { return llama_sampler_init_grammar(vocab, grammar_str, grammar_root); });
}

int ember_tokenize(const llama_vocab * vocab, const char * text, int32_t text_len,
                   llama_token * tokens, int32_t n_tokens_max, bool add_special,
                   bool parse_special, int32_t * out, char * err, size_t err_len) {
    return guarded(out, err, err_len, [&] {
        return llama_tokenize(vocab, text, text_len, tokens, n_tokens_max, add_special,
                              parse_special);
    });
}

int ember_token_to_piece(const llama_vocab * vocab, llama_token token, char * buf, int32_t length,
                         int32_t lstrip, bool special, int32_t * out, char * err,
                         size_t err_len) {
    return guarded(out, err, err_len,
                   [&] { return llama_token_to_piece(vocab, token, buf, length, lstrip, special); });
}

int ember_chat_apply_template(const char * tmpl, const llama_chat_message * chat, size_t n_msg,
                              bool add_ass, char * buf, int32_t length, int32_t * out, char * err,
                              size_t err_len) {
    return guarded(out, err, err_len, [&] {
        return llama_chat_apply_template(tmpl, chat, n_msg, add_ass, buf, length);
    });
}

int ember_decode(llama_context * ctx, llama_batch batch, int32_t * out, char * err,
                 size_t err_len) {
    return guarded(out, err, err_len, [&] { return llama_decode(ctx, batch); });
}

int ember_model_load_from_file(const char * path_model, llama_model_params params,
                               llama_model ** out, char * err, size_t err_len) {
    return guarded(out, err, err_len, [&] { return llama_model_load_from_file(path_model, params); });
}

int ember_init_from_model(llama_model * model, llama_context_params params, llama_context ** out,
                          char * err, size_t err_len) {
    return guarded(out, err, err_len, [&] { return llama_init_from_model(model, params); });
}

}  // extern "C"
