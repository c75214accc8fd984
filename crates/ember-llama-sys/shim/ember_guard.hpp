// SPDX-License-Identifier: MIT OR Apache-2.0
// The exception barrier's core, shared by ember_shim.cpp and ember_chat.cpp: a call inside
// try/catch, whose exception becomes EMBER_EXCEPTION and its what() in `err` (ember_shim.h).
#ifndef EMBER_GUARD_HPP
#define EMBER_GUARD_HPP

#include <cstring>
#include <exception>
#include <new>

#include "ember_shim.h"

namespace ember {

inline void copy_message(const char * what, char * err, size_t err_len) {
    if (err == nullptr || err_len == 0) {
        return;
    }
    std::strncpy(err, what != nullptr ? what : "unknown C++ exception", err_len - 1);
    err[err_len - 1] = '\0';
}

// Runs `call`; EMBER_OK, or EMBER_EXCEPTION with the message if it throws.
template <typename F> int guarded(char * err, size_t err_len, F && call) {
    try {
        call();
        return EMBER_OK;
    } catch (const std::bad_alloc &) {
        copy_message("out of memory (std::bad_alloc)", err, err_len);
    } catch (const std::exception & e) {
        copy_message(e.what(), err, err_len);
    } catch (...) {
        copy_message(nullptr, err, err_len);
    }
    return EMBER_EXCEPTION;
}

}  // namespace ember

#endif  // EMBER_GUARD_HPP
