// SPDX-License-Identifier: MIT OR Apache-2.0
// ember_chat.h over llama.cpp's `common` library. The request handling follows llama-server's
// (tools/server: oaicompat_chat_params_parse, the sampling fields of server-schema.cpp and
// common_sampler_init's grammar part), written against common's public API so that a
// chat request means here what it means there.
#include "ember_chat.h"
#include "ember_guard.hpp"

#include <chat.h>
#include <common.h>
#include <json-schema-to-grammar.h>
#include <json.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

struct ember_chat_templates {
    common_chat_templates_ptr ptr;
};

struct ember_chat_parser {
    common_chat_parser_params params;
};

namespace {

using json = common_json;

using ember::guarded;

char * to_c(const std::string & s) {
    char * out = static_cast<char *>(std::malloc(s.size() + 1));
    if (out == nullptr) {
        throw std::bad_alloc();
    }
    std::memcpy(out, s.data(), s.size());
    out[s.size()] = '\0';
    return out;
}

json parse_object(const char * text, const char * what) {
    if (text == nullptr || *text == '\0') {
        return json::object();
    }
    json value = json::parse(text);
    if (!value.is_object()) {
        throw std::invalid_argument(std::string(what) + " must be a JSON object");
    }
    return value;
}

// llama-server's `--reasoning-format` names; unknown names are an error there too.
common_reasoning_format reasoning_format_of(const std::string & name) {
    return common_reasoning_format_from_name(name);
}

// With tool_choice "required" (or a named function) llama.cpp's grammars still let the model
// write free text before its first call (`root ::= ... until-N? tool-call`); OpenAI's meaning
// is a call and no text, which a small model needs the grammar to hold it to. Drops that
// optional text rule from the root rule only; any other grammar is returned unchanged.
std::string require_call_first(const std::string & grammar) {
    static const std::regex before_call(R"( until-[0-9]+\? (tool-calls?)\b)");
    std::string out;
    size_t      start = 0;
    while (start < grammar.size()) {
        size_t      end  = grammar.find('\n', start);
        std::string line = grammar.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (line.rfind("root ::=", 0) == 0) {
            line = std::regex_replace(line, before_call, " $1");
        }
        out += line;
        if (end == std::string::npos) {
            break;
        }
        out += '\n';
        start = end + 1;
    }
    return out;
}

// Without parallel_tool_calls, one call: some of llama.cpp's generators (Qwen3's, Hermes')
// write `tool-calls ::= (tool-call space)+` whatever the setting, and a small model then
// repeats its call until max_tokens. Makes that rule one call; other grammars are unchanged.
std::string single_call(const std::string & grammar) {
    static const std::string many = "tool-calls ::= (tool-call space)+";
    std::string              out  = grammar;
    size_t                   at   = out.find(many);
    if (at != std::string::npos && (at == 0 || out[at - 1] == '\n')) {
        out.replace(at, many.size(), "tool-calls ::= tool-call space");
    }
    return out;
}

// oaicompat_chat_params_parse, less media (insightd has no multimodal projector).
json apply(const common_chat_templates * tmpls, json & body, const json & opt) {
    const bool use_jinja         = opt.value("use_jinja", true);
    const bool prefill_assistant = opt.value("prefill_assistant", true);
    json       llama_params      = json::object();

    json tools       = body.contains("tools") ? body.at("tools") : json();
    bool has_tools   = tools.is_array() && !tools.empty();
    bool stream      = body.value("stream", false);
    auto tool_choice = body.contains("tool_choice") && body.at("tool_choice").is_string() ?
                           body.at("tool_choice").get<std::string>() :
                           std::string("auto");
    if (body.contains("tool_choice") && body.at("tool_choice").is_object()) {
        // {"type": "function", "function": {"name": ...}}: llama-server takes only the strings;
        // a named function is "required" with that one tool left.
        const json & choice = body.at("tool_choice");
        std::string  name   = choice.contains("function") ? choice.at("function").value("name", std::string()) : "";
        if (name.empty()) {
            throw std::invalid_argument("tool_choice: an object must name a function: {\"type\": \"function\", \"function\": {\"name\": ...}}");
        }
        json kept = json::array();
        if (has_tools) {
            for (size_t i = 0; i < tools.size(); i++) {
                const json & tool = tools.at(i);
                if (tool.contains("function") && tool.at("function").value("name", std::string()) == name) {
                    kept.push_back(tool);
                }
            }
        }
        if (kept.empty()) {
            throw std::invalid_argument("tool_choice names function \"" + name + "\", which is not in tools");
        }
        tools       = kept;
        tool_choice = "required";
    }

    if (!use_jinja) {
        if (has_tools) {
            throw std::invalid_argument("tools param requires --jinja flag");
        }
        if (tool_choice != "auto") {
            throw std::invalid_argument("tool_choice param requires --jinja flag");
        }
    }

    if (body.contains("stop") && body.at("stop").is_string()) {
        llama_params["stop"] = json::array({ body.at("stop").get<std::string>() });
    } else if (body.contains("stop") && body.at("stop").is_array()) {
        llama_params["stop"] = body.at("stop");
    } else {
        llama_params["stop"] = json::array();
    }

    json        json_schema = body.contains("json_schema") ? body.at("json_schema") : json();
    std::string grammar     = body.value("grammar", std::string());
    if (!json_schema.is_null() && !grammar.empty()) {
        throw std::invalid_argument("Cannot use both json_schema and grammar");
    }
    if (body.contains("response_format")) {
        json        response_format = body.at("response_format");
        std::string response_type   = response_format.value("type", std::string());
        if (response_type == "json_object") {
            if (response_format.contains("schema") || json_schema.empty()) {
                json_schema = response_format.contains("schema") ? response_format.at("schema") : json::object();
            }
        } else if (response_type == "json_schema") {
            json wrapper = response_format.contains("json_schema") ? response_format.at("json_schema") : json::object();
            json_schema  = wrapper.contains("schema") ? wrapper.at("schema") : json::object();
        } else if (!response_type.empty() && response_type != "text") {
            throw std::invalid_argument(
                "response_format type must be one of \"text\" or \"json_object\", but got: " + response_type);
        }
    }
    if (json_schema.is_object() && json_schema.empty()) {
        json_schema["type"] = "object";
    }

    if (!body.contains("messages")) {
        throw std::invalid_argument("'messages' is required");
    }
    json & messages = body.at("messages");
    if (!messages.is_array()) {
        throw std::invalid_argument("Expected 'messages' to be an array");
    }
    for (size_t i = 0; i < messages.size(); i++) {
        json &      msg  = messages.at(i);
        std::string role = msg.value("role", std::string());
        if (role != "assistant" && !msg.contains("content")) {
            throw std::invalid_argument("All non-assistant messages must contain 'content'");
        }
        if (role == "assistant" && !msg.contains("content") && !msg.contains("tool_calls")) {
            throw std::invalid_argument("Assistant message must contain either 'content' or 'tool_calls'!");
        }
        if (!msg.contains("content")) {
            continue;
        }
        const json & content = msg.at("content");
        if (content.is_string() || content.is_null()) {
            continue;
        }
        if (!content.is_array()) {
            throw std::invalid_argument("Expected 'content' to be a string or an array");
        }
        for (size_t j = 0; j < content.size(); j++) {
            std::string type = content.at(j).value("type", std::string());
            if (type != "text") {
                throw std::invalid_argument("content part type \"" + type +
                                            "\" is not supported: this server has no multimodal projector; send text parts");
            }
        }
    }

    auto caps = common_chat_templates_get_caps(tmpls);

    common_chat_templates_inputs inputs;
    inputs.messages            = common_chat_msgs_parse_oaicompat(messages);
    inputs.tools               = common_chat_tools_parse_oaicompat(tools);
    inputs.tool_choice         = common_chat_tool_choice_parse_oaicompat(tool_choice);
    inputs.json_schema         = json_schema.is_null() ? "" : json_schema.dump();
    inputs.grammar             = grammar;
    inputs.use_jinja           = use_jinja;
    inputs.parallel_tool_calls = body.value("parallel_tool_calls", caps["supports_parallel_tool_calls"]);
    inputs.add_generation_prompt  = body.value("add_generation_prompt", true);
    inputs.continue_final_message = body.contains("continue_final_message") ?
                                        common_chat_continuation_parse(body.at("continue_final_message")) :
                                        COMMON_CHAT_CONTINUATION_NONE;
    if (inputs.continue_final_message == COMMON_CHAT_CONTINUATION_NONE && prefill_assistant &&
        !inputs.messages.empty() && inputs.messages.back().role == "assistant") {
        if (inputs.messages.size() >= 2 && inputs.messages[inputs.messages.size() - 2].role == "assistant") {
            throw std::invalid_argument("Cannot have 2 or more assistant messages at the end of the list.");
        }
        inputs.continue_final_message = COMMON_CHAT_CONTINUATION_AUTO;
        inputs.add_generation_prompt  = false;
    }
    if (inputs.continue_final_message != COMMON_CHAT_CONTINUATION_NONE && inputs.add_generation_prompt) {
        throw std::invalid_argument("Cannot set both add_generation_prompt and continue_final_message to true.");
    }
    if (inputs.continue_final_message != COMMON_CHAT_CONTINUATION_NONE && !inputs.messages.empty() &&
        inputs.messages.back().role == "assistant" && !inputs.messages.back().tool_calls.empty()) {
        throw std::invalid_argument("Cannot continue an assistant message that contains tool calls.");
    }
    inputs.reasoning_format = reasoning_format_of(opt.value("reasoning_format", std::string("auto")));
    if (body.contains("reasoning_format")) {
        inputs.reasoning_format = reasoning_format_of(body.at("reasoning_format").get<std::string>());
    }
    inputs.enable_thinking = opt.value("enable_thinking", true);
    if (!inputs.tools.empty() && inputs.tool_choice != COMMON_CHAT_TOOL_CHOICE_NONE) {
        if (body.contains("grammar")) {
            throw std::invalid_argument("Cannot use custom grammar constraints with tools.");
        }
        llama_params["parse_tool_calls"] = true;
    }

    // The server's template kwargs, then the request's (each value as JSON text, as upstream).
    if (opt.contains("chat_template_kwargs")) {
        for (const auto & item : opt.at("chat_template_kwargs").items()) {
            inputs.chat_template_kwargs[item.key()] = item.value().dump();
        }
    }
    if (body.contains("chat_template_kwargs") && body.at("chat_template_kwargs").is_object()) {
        for (const auto & item : body.at("chat_template_kwargs").items()) {
            inputs.chat_template_kwargs[item.key()] = item.value().dump();
        }
    }
    auto thinking_kwarg = inputs.chat_template_kwargs.find("enable_thinking");
    if (thinking_kwarg != inputs.chat_template_kwargs.end()) {
        const std::string & value = thinking_kwarg->second;
        if (value == "true") {
            inputs.enable_thinking = true;
        } else if (value == "false") {
            inputs.enable_thinking = false;
        } else if (!value.empty() && value[0] == '"') {
            throw std::invalid_argument("invalid type for \"enable_thinking\" (expected boolean, got string)");
        }
    }
    if (body.contains("reasoning_effort") && body.at("reasoning_effort").is_string()) {
        std::string effort = body.at("reasoning_effort").get<std::string>();
        if (effort == "none") {
            inputs.enable_thinking = false;
            inputs.chat_template_kwargs.erase("reasoning_effort");
        } else if (!effort.empty()) {
            inputs.chat_template_kwargs["reasoning_effort"] = json::make(effort).dump();
        }
    }

    // llama.cpp's built-in (non-Jinja) renderer has no continuation: it would close the
    // assistant's turn. Render the turn opened without the last message, then its text.
    std::string prefill;
    if (!use_jinja && inputs.continue_final_message != COMMON_CHAT_CONTINUATION_NONE &&
        !inputs.messages.empty() && inputs.messages.back().role == "assistant") {
        const common_chat_msg & last = inputs.messages.back();
        prefill                      = last.content;
        for (const auto & part : last.content_parts) {
            if (part.type == "text") {
                prefill += (prefill.empty() ? "" : "\n") + part.text;
            }
        }
        inputs.messages.pop_back();
        inputs.continue_final_message = COMMON_CHAT_CONTINUATION_NONE;
        inputs.add_generation_prompt  = true;
    }
    auto chat_params = common_chat_templates_apply(tmpls, inputs);
    chat_params.prompt += prefill;
    const bool continued = !prefill.empty() || inputs.continue_final_message != COMMON_CHAT_CONTINUATION_NONE;

    llama_params["chat_format"]      = static_cast<int>(chat_params.format);
    llama_params["chat_format_name"] = common_chat_format_name(chat_params.format);
    llama_params["prompt"]           = chat_params.prompt;
    if (!chat_params.grammar.empty()) {
        std::string tool_grammar = inputs.tool_choice == COMMON_CHAT_TOOL_CHOICE_REQUIRED ?
                                       require_call_first(chat_params.grammar) :
                                       chat_params.grammar;
        llama_params["grammar"] = inputs.parallel_tool_calls ? tool_grammar : single_call(tool_grammar);
        llama_params["grammar_type"] = std::string(inputs.tools.empty() ? "output_format" : "tool_calls");
    } else if (!inputs.json_schema.empty()) {
        llama_params["grammar"]      = json_schema_to_grammar(json::parse(inputs.json_schema));
        llama_params["grammar_type"] = std::string("output_format");
    } else if (!grammar.empty()) {
        llama_params["grammar"]      = grammar;
        llama_params["grammar_type"] = std::string("user");
    }
    llama_params["grammar_lazy"] = chat_params.grammar_lazy;
    json triggers                = json::array();
    for (const auto & trigger : chat_params.grammar_triggers) {
        json t     = json::object();
        t["type"]  = static_cast<int>(trigger.type);
        t["value"] = trigger.value;
        if (trigger.type == COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN) {
            t["token"] = static_cast<int>(trigger.token);
        }
        triggers.push_back(t);
    }
    llama_params["grammar_triggers"]  = triggers;
    llama_params["preserved_tokens"]  = chat_params.preserved_tokens;
    llama_params["generation_prompt"] = chat_params.generation_prompt;
    for (const auto & stop : chat_params.additional_stops) {
        llama_params["stop"].push_back(stop);
    }
    if (!chat_params.parser.empty()) {
        llama_params["chat_parser"] = chat_params.parser;
    }
    llama_params["reasoning_format"] = common_reasoning_format_name(inputs.reasoning_format);
    llama_params["is_continuation"]  = continued;
    llama_params["supports_thinking"] = chat_params.supports_thinking;
    if (!chat_params.thinking_end_tags.empty()) {
        llama_params["thinking_start_tag"] = chat_params.thinking_start_tag;
        llama_params["thinking_end_tags"]  = chat_params.thinking_end_tags;
    }
    if (body.value("logprobs", false) && has_tools && stream) {
        throw std::invalid_argument("logprobs is not supported with tools + stream");
    }
    return llama_params;
}

common_chat_parser_params parser_params(const json & p) {
    common_chat_parser_params params;
    params.format            = static_cast<common_chat_format>(p.value("chat_format", 0));
    params.reasoning_format  = reasoning_format_of(p.value("reasoning_format", std::string("none")));
    params.generation_prompt = p.value("generation_prompt", std::string());
    params.parse_tool_calls  = p.value("parse_tool_calls", false);
    params.is_continuation   = p.value("is_continuation", false);
    params.reasoning_in_content = p.value("reasoning_in_content", false);
    std::string parser       = p.value("chat_parser", std::string());
    if (!parser.empty()) {
        params.parser.load(parser);
    }
    return params;
}

}  // namespace

extern "C" {

int ember_chat_templates_init(const llama_model * model, const char * tmpl_override,
                              ember_chat_templates ** out, char * err, size_t err_len) {
    return guarded(err, err_len, [&] {
        auto tmpls = common_chat_templates_init(model, tmpl_override != nullptr ? tmpl_override : "");
        if (!tmpls) {
            throw std::runtime_error("llama.cpp could not make the chat templates");
        }
        *out = new ember_chat_templates{ std::move(tmpls) };
    });
}

void ember_chat_templates_free(ember_chat_templates * tmpls) {
    delete tmpls;
}

int ember_chat_templates_info(const ember_chat_templates * tmpls, char ** out, char * err,
                              size_t err_len) {
    return guarded(err, err_len, [&] {
        json info      = json::object();
        info["source"] = common_chat_templates_source(tmpls->ptr.get());
        std::string tool_use = common_chat_templates_source(tmpls->ptr.get(), "tool_use");
        info["tool_use_source"] = tool_use.empty() ? json() : json::make(tool_use);
        info["caps"]            = common_chat_templates_get_caps(tmpls->ptr.get());
        info["supports_thinking"] = common_chat_templates_support_enable_thinking(tmpls->ptr.get());
        *out = to_c(info.dump());
    });
}

int ember_chat_templates_apply(const ember_chat_templates * tmpls, const char * request_json,
                               const char * options_json, char ** out, char * err,
                               size_t err_len) {
    return guarded(err, err_len, [&] {
        json body = parse_object(request_json, "the request");
        json opt  = parse_object(options_json, "the options");
        *out      = to_c(apply(tmpls->ptr.get(), body, opt).dump());
    });
}

int ember_chat_parser_init(const char * params_json, ember_chat_parser ** out, char * err,
                           size_t err_len) {
    return guarded(err, err_len, [&] {
        *out = new ember_chat_parser{ parser_params(parse_object(params_json, "the parser settings")) };
    });
}

void ember_chat_parser_free(ember_chat_parser * parser) {
    delete parser;
}

int ember_chat_parser_parse(const ember_chat_parser * parser, const char * text, size_t text_len,
                            bool is_partial, char ** out, char * err, size_t err_len) {
    return guarded(err, err_len, [&] {
        auto msg = common_chat_parse(std::string(text, text_len), is_partial, parser->params);
        *out     = to_c(msg.to_json_oaicompat().dump());
    });
}

int ember_chat_grammar_sampler(const llama_vocab * vocab, const char * params_json,
                               llama_sampler ** out, char * err, size_t err_len) {
    return guarded(err, err_len, [&] {
        *out               = nullptr;
        json        p      = parse_object(params_json, "the grammar settings");
        std::string gbnf   = p.value("grammar", std::string());
        if (gbnf.empty()) {
            return;
        }
        std::string type   = p.value("grammar_type", std::string("user"));
        bool        lazy   = p.value("grammar_lazy", false);

        // server-schema.cpp: preserved tokens, and trigger words that are one token become
        // token triggers; common_sampler_init: words escaped, full patterns anchored.
        std::vector<llama_token> preserved;
        if (p.contains("preserved_tokens")) {
            const json & list = p.at("preserved_tokens");
            for (size_t i = 0; i < list.size(); i++) {
                auto ids = common_tokenize(vocab, list.at(i).get<std::string>(), false, true);
                if (ids.size() == 1) {
                    preserved.push_back(ids[0]);
                }
            }
        }
        std::vector<std::string> patterns;
        std::vector<llama_token> tokens;
        if (p.contains("grammar_triggers")) {
            const json & list = p.at("grammar_triggers");
            for (size_t i = 0; i < list.size(); i++) {
                const json & t     = list.at(i);
                auto         kind  = static_cast<common_grammar_trigger_type>(t.at("type").get<int>());
                std::string  value = t.at("value").get<std::string>();
                switch (kind) {
                    case COMMON_GRAMMAR_TRIGGER_TYPE_WORD: {
                        auto ids = common_tokenize(vocab, value, false, true);
                        if (ids.size() == 1) {
                            if (std::find(preserved.begin(), preserved.end(), ids[0]) == preserved.end()) {
                                throw std::runtime_error("Grammar trigger word should be marked as preserved token: " + value);
                            }
                            tokens.push_back(ids[0]);
                        } else {
                            patterns.push_back(regex_escape(value));
                        }
                        break;
                    }
                    case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN:
                        patterns.push_back(value);
                        break;
                    case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL: {
                        std::string anchored = "^$";
                        if (!value.empty()) {
                            anchored = (value.front() != '^' ? "^" : "") + value + (value.back() != '$' ? "$" : "");
                        }
                        patterns.push_back(anchored);
                        break;
                    }
                    case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN:
                        tokens.push_back(static_cast<llama_token>(t.at("token").get<int>()));
                        break;
                    default:
                        throw std::runtime_error("unknown grammar trigger type");
                }
            }
        }
        if (lazy && patterns.empty() && tokens.empty()) {
            throw std::runtime_error("Error: no triggers set for lazy grammar!");
        }
        llama_sampler * grammar = nullptr;
        if (lazy) {
            std::vector<const char *> patterns_c;
            for (const auto & pattern : patterns) {
                patterns_c.push_back(pattern.c_str());
            }
            grammar = llama_sampler_init_grammar_lazy_patterns(vocab, gbnf.c_str(), "root", patterns_c.data(),
                                                               patterns_c.size(), tokens.data(), tokens.size());
        } else {
            grammar = llama_sampler_init_grammar(vocab, gbnf.c_str(), "root");
        }
        if (grammar == nullptr) {
            throw std::runtime_error("failed to parse grammar");
        }
        *out = grammar;
    });
}

int ember_chat_grammar_prefill(const llama_vocab * vocab, const char * params_json,
                               llama_token * tokens, size_t capacity, size_t * n_tokens, char * err,
                               size_t err_len) {
    return guarded(err, err_len, [&] {
        *n_tokens                     = 0;
        json        p                 = parse_object(params_json, "the grammar settings");
        std::string type              = p.value("grammar_type", std::string("user"));
        std::string generation_prompt = p.value("generation_prompt", std::string());
        // common_sampler_init: only tool-call and output-format grammars, not lazy ones.
        if (p.value("grammar_lazy", false) || (type != "tool_calls" && type != "output_format") ||
            generation_prompt.empty()) {
            return;
        }
        auto ids = common_tokenize(vocab, generation_prompt, false, true);
        for (size_t i = 0; i < ids.size(); i++) {
            std::string piece = common_token_to_piece(vocab, ids[i], true);
            if (i == 0 && !piece.empty() && std::isspace(static_cast<unsigned char>(piece[0])) &&
                !std::isspace(static_cast<unsigned char>(generation_prompt[0]))) {
                // Some tokenizers put a space before the first special token: not the prompt's.
                continue;
            }
            if (*n_tokens < capacity) {
                tokens[*n_tokens] = ids[i];
            }
            (*n_tokens)++;
        }
    });
}

int ember_json_schema_to_grammar(const char * schema_json, char ** out, char * err,
                                 size_t err_len) {
    return guarded(err, err_len, [&] {
        json schema = json::parse(schema_json != nullptr ? schema_json : "");
        if (schema.is_object() && schema.empty()) {
            schema["type"] = "object";
        }
        *out = to_c(json_schema_to_grammar(schema));
    });
}

void ember_chat_string_free(char * s) {
    std::free(s);
}

}  // extern "C"
