/* jsonw: writing JSON strings and numbers byte for byte as Go's
 * encoding/json does (json.Marshal): "<>&" and U+2028/U+2029 escaped,
 * \b \f \n \r \t as short escapes (Go 1.22 and later), other control
 * characters as \u00XX, invalid UTF-8 replaced by \ufffd, floats in their
 * shortest round-trip form. jansson cannot do this (it rejects invalid
 * UTF-8 and has no HTML escaping), and test2json consumers compare output
 * byte for byte. */
#ifndef HANDOFF_JSONW_H
#define HANDOFF_JSONW_H

#include <stddef.h>

#include "buf.h"

/* Appends s[0..len) to b as a quoted JSON string. s may hold any bytes,
 * NUL included. Any thread. */
void jsonw_string(struct buf *b, const char *s, size_t len);

/* Appends v as Go's encoding/json writes a float64: the shortest decimal
 * that reads back as v, without exponent for 1e-6 <= |v| < 1e21 ("0",
 * "0.01", "1.5", "100"), else with one ("1e-7", "1e+21"). NaN and
 * infinities, which Go refuses to encode, are written as 0. Assumes the C
 * locale for the decimal point (Handoff never calls setlocale). Any
 * thread. */
void jsonw_float64(struct buf *b, double v);

#endif
