#include "auth/org.h"

#include <string.h>

/* The suffix alphabet: 5 case bits per group index into these 32 characters. */
static const char SUFFIX_CHARS[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

static int is_alnum_ascii(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Length of id when it is 15 or 18 ASCII alphanumerics, else 0. Never reads past byte 19. */
static size_t id_shape(const char *id)
{
    if (!id)
        return 0;
    size_t n = 0;
    while (n < 19 && id[n]) {
        if (!is_alnum_ascii((unsigned char)id[n]))
            return 0;
        n++;
    }
    return n == 15 || n == 18 ? n : 0;
}

/* Each 5-char group of the prefix gives one suffix char: bit i set when char i is A-Z. */
static void suffix_of(const char *id, char suffix[3])
{
    for (int g = 0; g < 3; g++) {
        unsigned bits = 0;
        for (int i = 0; i < 5; i++) {
            unsigned char c = (unsigned char)id[g * 5 + i];
            bits |= (unsigned)(c >= 'A' && c <= 'Z') << i;
        }
        suffix[g] = SUFFIX_CHARS[bits];
    }
}

/* 18-char form of a 15/18 id into out[18] (no NUL). Returns 0 when id is not valid. */
static int normalise18(const char *id, char out[18])
{
    size_t n = id_shape(id);
    if (!n)
        return 0;
    memcpy(out, id, 15);
    suffix_of(id, out + 15);
    /* An 18-char id must carry exactly the suffix its prefix implies. */
    return n == 15 || memcmp(out + 15, id + 15, 3) == 0;
}

int pg_sf_id_valid(const char *id)
{
    char tmp[18];
    return normalise18(id, tmp);
}

int pg_sf_id_to18(const char *id15, char *out, size_t outsz)
{
    if (!out || outsz < 19) {
        if (out && outsz)
            out[0] = '\0';
        return PG_EINVAL;
    }
    out[0] = '\0';
    char tmp[18];
    if (!normalise18(id15, tmp))
        return PG_EINVAL;
    memcpy(out, tmp, 18);
    out[18] = '\0';
    return PG_OK;
}

int pg_org_allowed(const char *const *allowed, size_t n, const char *org_id)
{
    char want[18];
    if (!normalise18(org_id, want))
        return 0;
    /*
     * Comparing the 18-char forms is the rule in the header: equal 15-char prefixes imply equal
     * computed suffixes, and a given 18-char suffix was already checked against its prefix.
     * Every entry costs the same 18-byte XOR scan and the result is OR-ed, not returned early.
     */
    unsigned found = 0;
    for (size_t i = 0; i < n; i++) {
        char have[18];
        memset(have, 0, sizeof have);
        unsigned ok = allowed ? (unsigned)normalise18(allowed[i], have) : 0u;
        unsigned diff = 0;
        for (size_t j = 0; j < 18; j++)
            diff |= (unsigned char)(have[j] ^ want[j]);
        unsigned eq = ((diff - 1u) >> 8) & 1u; /* 1 iff diff == 0 (diff < 256) */
        found |= ok & eq;
    }
    return (int)found;
}
