/* E-mail and phone normalisation: two spellings of one customer give one key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sync/normalize.h"

static void email_is(const char *in, const char *want)
{
    char out[PG_NORM_EMAIL_MAX];
    int rc = pg_norm_email(in, out, sizeof out);
    if (rc != PG_OK)
        fail_msg("\"%s\" rejected (%d)", in, rc);
    assert_string_equal(out, want);
}

static void email_bad(const char *in)
{
    char out[PG_NORM_EMAIL_MAX] = "junk";
    int rc = pg_norm_email(in, out, sizeof out);
    if (rc != PG_EINVAL)
        fail_msg("\"%s\" gave %d (\"%s\"), want PG_EINVAL", in ? in : "(null)", rc, out);
    assert_string_equal(out, "");
}

static void email_cases(void **state)
{
    email_is("jane.doe@example.com", "jane.doe@example.com");
    email_is("Jane.Doe@Example.COM", "jane.doe@example.com");
    email_is("  JANE.DOE@EXAMPLE.COM \t\r\n", "jane.doe@example.com");
    email_is("o'brien+loyalty@mail.example.co.uk", "o'brien+loyalty@mail.example.co.uk");
    email_is("a@b.co", "a@b.co");
    email_is("x_y-z@sub-domain.example.org", "x_y-z@sub-domain.example.org");

    email_bad(NULL);
    email_bad("");
    email_bad("   ");
    email_bad("jane.doe");
    email_bad("@example.com");
    email_bad("jane@");
    email_bad("jane@@example.com");
    email_bad("jane@doe@example.com");
    email_bad("jane doe@example.com");
    email_bad("jane@exa mple.com");
    email_bad("\"jane\"@example.com");
    email_bad("jane@localhost");
    email_bad("jane@example..com");
    email_bad("jane@.example.com");
    email_bad("jane@example.com.");
    email_bad("jane@-example.com");
    email_bad("jane@example-.com");
    email_bad("jane@exa_mple.com");
    email_bad(".jane@example.com");
    email_bad("jane.@example.com");
    email_bad("ja..ne@example.com");
    email_bad("jane<x>@example.com");
    email_bad("zoë@example.com");
    email_bad("jane@example.com\x01");

    char local[80], big[600];
    memset(local, 'a', 65);
    local[65] = '\0';
    snprintf(big, sizeof big, "%s@example.com", local);
    email_bad(big); /* local part 65 */
    local[64] = '\0';
    snprintf(big, sizeof big, "%s@example.com", local);
    email_is(big, big); /* 64 is fine */

    /* 254 in all is the limit: 64 + 1 + 189 (labels of 63 + dots) */
    char dom[260];
    snprintf(dom, sizeof dom, "%.63s.%.63s.%.61s", big, big, big); /* 189 chars of 'a' */
    snprintf(big, sizeof big, "%.64s@%s", local, dom);
    assert_int_equal(strlen(big), 254);
    email_is(big, big);
    snprintf(big, sizeof big, "%.64s@%sa", local, dom);
    email_bad(big);

    char small[8];
    assert_int_equal(pg_norm_email("jane@example.com", small, sizeof small), PG_ETOOLARGE);
}

static void phone_is(const char *in, const char *cc, const char *want)
{
    char out[PG_NORM_PHONE_MAX];
    int rc = pg_norm_phone(in, cc, out, sizeof out);
    if (rc != PG_OK)
        fail_msg("\"%s\" (%s) rejected (%d)", in, cc ? cc : "default", rc);
    assert_string_equal(out, want);
}

static void phone_bad(const char *in, const char *cc)
{
    char out[PG_NORM_PHONE_MAX] = "junk";
    int rc = pg_norm_phone(in, cc, out, sizeof out);
    if (rc != PG_EINVAL)
        fail_msg("\"%s\" (%s) gave %d (\"%s\"), want PG_EINVAL", in ? in : "(null)",
                 cc ? cc : "default", rc, out);
    assert_string_equal(out, "");
}

static void phone_us(void **state)
{
    phone_is("+15551234567", NULL, "+15551234567");
    phone_is("(555) 123-4567", NULL, "+15551234567");
    phone_is("555.123.4567", "US", "+15551234567");
    phone_is("555-123-4567", "us", "+15551234567");
    phone_is("1 (555) 123-4567", "US", "+15551234567");
    phone_is("  +1 555 123 4567 ", "US", "+15551234567");
    phone_is("416-555-0199", "CA", "+14165550199");
    phone_is("011 44 20 7946 0958", "US", "+442079460958");

    phone_bad("123-4567", "US");                    /* 7 digits: too short */
    phone_bad("155-123-4567", "US");                /* area code starts with 1 */
    phone_bad("055-123-4567", "US");                /* area code starts with 0 */
    phone_is("555-023-4567", "US", "+15550234567"); /* the exchange is not checked */
    phone_bad("555-123-45678", "US");               /* 11 digits without trunk 1 */
    phone_bad("+1 555 123 45678", "US");
    phone_bad("555-123-4567 x123", "US");
    phone_bad("555-123-4567 ext 12", "US");
    phone_bad("555-123-4567#12", "US");
    phone_bad("555-123-4567;ext=12", "US");
    phone_bad("555-CALL-NOW", "US");
    phone_bad("1-800-FLOWERS", "US");
    phone_bad("", "US");
    phone_bad("   ", "US");
    phone_bad("()-.", "US");
    phone_bad(NULL, "US");
    phone_bad("555+1234567", "US");
    phone_bad("++15551234567", "US");
}

static void phone_international(void **state)
{
    phone_is("+44 20 7946 0958", "US", "+442079460958");
    phone_is("0044 20 7946 0958", "US", "+442079460958");
    phone_is("0044 20 7946 0958", "GB", "+442079460958");
    phone_is("020 7946 0958", "GB", "+442079460958");
    phone_is("+44 (0)20 7946 0958", "US", "+442079460958");
    phone_is("07700 900123", "GB", "+447700900123");
    phone_is("0800 123 456", "GB", "+44800123456");
    phone_is("030 12345678", "DE", "+493012345678");
    phone_is("+49 89 1234567", "US", "+49891234567");
    phone_is("01 23 45 67 89", "FR", "+33123456789");
    phone_is("+33 6 12 34 56 78", "GB", "+33612345678");
    phone_is("+61 2 9876 5432", "US", "+61298765432"); /* not in the table: length only */
    phone_is("00 61 2 9876 5432", "DE", "+61298765432");

    phone_bad("+44 20 7946", "US");         /* GB national number too short */
    phone_bad("+44 20 7946 0958 12", "US"); /* too long for GB */
    phone_bad("020 7946", "GB");
    phone_bad("01 23 45 67 8", "FR");      /* FR needs 9 */
    phone_bad("+1234567", "US");           /* 7 digits */
    phone_bad("+6129876543210987", "US");  /* 16 digits */
    phone_bad("+0 44 20 7946 0958", "US"); /* no country code starts with 0 */
    phone_bad("+44 20 7946 0958 ext. 5", "GB");
    phone_bad("12345678901234567890123456789012345", "US");

    char out[PG_NORM_PHONE_MAX];
    assert_int_equal(pg_norm_phone("5551234567", "ZZ", out, sizeof out), PG_ECONFIG);
    char small[8];
    assert_int_equal(pg_norm_phone("+15551234567", "US", small, sizeof small), PG_ETOOLARGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(email_cases),
        cmocka_unit_test(phone_us),
        cmocka_unit_test(phone_international),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
