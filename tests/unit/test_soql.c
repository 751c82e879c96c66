/* SOQL literal escaping, identifier checks and URL encoding: POS input never changes a query. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "salesforce/soql.h"

static void expect_escape(const char *in, const char *want)
{
    struct pg_buf b;
    pg_buf_init(&b, 4096);
    assert_int_equal(pg_soql_escape(&b, in), PG_OK);
    assert_string_equal(b.data ? b.data : "", want);
    pg_buf_free(&b);
}

static void expect_reject(const char *in)
{
    struct pg_buf b;
    pg_buf_init(&b, 4096);
    assert_int_equal(pg_buf_puts(&b, "keep"), PG_OK);
    assert_int_equal(pg_soql_escape(&b, in), PG_EINVAL);
    assert_string_equal(b.data, "keep"); /* nothing half-appended */
    pg_buf_free(&b);
}

static void quotes_and_backslash(void **state)
{
    expect_escape("", "");
    expect_escape("LY-000123", "LY-000123");
    expect_escape("Bob's BBQ", "Bob\\'s BBQ");
    expect_escape("a\\b", "a\\\\b");
    expect_escape("say \"hi\"", "say \\\"hi\\\"");
    /* A trailing backslash must not escape the closing quote. */
    expect_escape("x\\", "x\\\\");
    expect_escape("\\'", "\\\\\\'");
    /* LIKE wildcards mean nothing in '=' and are not escape sequences there: kept as is. */
    expect_escape("50%_off", "50%_off");
}

static void control_escapes(void **state)
{
    expect_escape("a\nb\rc\td\be\ff", "a\\nb\\rc\\td\\be\\ff");
    expect_reject("bell\a");
    expect_reject("x\x01y");
    expect_reject("x\x1fy");
    expect_reject("del\x7f");
    expect_reject("esc\x1b[0m");
}

static void unicode_kept(void **state)
{
    expect_escape("Zoë Ångström", "Zoë Ångström");
    expect_escape("東京 😀", "東京 😀");
    expect_escape("O\xe2\x80\x99"
                  "Brien",
                  "O\xe2\x80\x99"
                  "Brien"); /* U+2019 is not a quote */
}

static void invalid_utf8_rejected(void **state)
{
    expect_reject("\xff");
    expect_reject("abc\x80");              /* lone continuation */
    expect_reject("\xc3");                 /* truncated */
    expect_reject("\xc0\xa7");             /* overlong "'" */
    expect_reject("\xe0\x80\xa7");         /* overlong "'" */
    expect_reject("\xed\xa0\x80");         /* surrogate */
    expect_reject("\xf4\x90\x80\x80");     /* > U+10FFFF */
    expect_reject("\xe2\x82");             /* truncated 3-byte */
    expect_reject("ok \xc3\x28 then ' x"); /* bad continuation before a quote */
}

static void injection_stays_in_literal(void **state)
{
    struct pg_buf b;
    pg_buf_init(&b, 4096);
    assert_int_equal(
        pg_soql_select_eq(&b, "Id,Name", "Contact", "Loyalty_Id__c", "x' OR Name != '", 1), PG_OK);
    assert_string_equal(
        b.data, "SELECT Id,Name FROM Contact WHERE Loyalty_Id__c = 'x\\' OR Name != \\'' LIMIT 1");
    /* Count unescaped quotes: exactly the two around the literal. */
    int quotes = 0;
    for (size_t i = 0; i < b.len; i++) {
        if (b.data[i] == '\\') {
            i++;
            continue;
        }
        quotes += b.data[i] == '\'';
    }
    assert_int_equal(quotes, 2);
    pg_buf_reset(&b);

    /* Backslash then quote: the attacker's backslash is escaped, the quote too. */
    assert_int_equal(pg_soql_select_eq(&b, "Id", "Contact", "Email", "a\\' OR Id != null --", 5),
                     PG_OK);
    assert_string_equal(b.data,
                        "SELECT Id FROM Contact WHERE Email = 'a\\\\\\' OR Id != null --' LIMIT 5");
    pg_buf_free(&b);
}

static void select_eq_shape(void **state)
{
    struct pg_buf b;
    pg_buf_init(&b, 4096);
    assert_int_equal(pg_soql_select_eq(&b, "Id, FirstName ,Loyalty_Tier__c,Account.Name", "Contact",
                                       "Phone", "+15551234567", 2),
                     PG_OK);
    assert_string_equal(b.data, "SELECT Id,FirstName,Loyalty_Tier__c,Account.Name FROM Contact "
                                "WHERE Phone = '+15551234567' LIMIT 2");
    pg_buf_reset(&b);
    assert_int_equal(pg_soql_select_eq(&b, "Id", "Contact", "Email", "x", 0), PG_EINVAL);
    assert_int_equal(pg_soql_select_eq(&b, "Id", "Contact", "Email", "x", 2001), PG_EINVAL);
    assert_int_equal(pg_soql_select_eq(&b, "Id", "Contact", "Email", "bad\x01", 1), PG_EINVAL);
    assert_int_equal(pg_soql_select_eq(&b, "Id", "Contact", "Email", NULL, 1), PG_EINVAL);
    assert_int_equal(b.len, 0);
    pg_buf_free(&b);
}

static void identifiers(void **state)
{
    assert_true(pg_soql_ident_ok("Contact"));
    assert_true(pg_soql_ident_ok("Loyalty_Id__c"));
    assert_true(pg_soql_ident_ok("ns__Points__c"));
    assert_true(pg_soql_ident_ok("A1"));
    assert_false(pg_soql_ident_ok(""));
    assert_false(pg_soql_ident_ok(NULL));
    assert_false(pg_soql_ident_ok("1Contact"));
    assert_false(pg_soql_ident_ok("_x"));
    assert_false(pg_soql_ident_ok("x_"));
    assert_false(pg_soql_ident_ok("Contact WHERE"));
    assert_false(pg_soql_ident_ok("Id;"));
    assert_false(pg_soql_ident_ok("Name'"));
    assert_false(pg_soql_ident_ok("Account.Name")); /* a path, not an identifier */
    assert_false(pg_soql_ident_ok("Zoë"));
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_false(pg_soql_ident_ok(longname));

    assert_true(pg_soql_fields_ok("Id"));
    assert_true(pg_soql_fields_ok("Id,Name"));
    assert_true(pg_soql_fields_ok(" Id , Account.Name "));
    assert_false(pg_soql_fields_ok(""));
    assert_false(pg_soql_fields_ok("Id,"));
    assert_false(pg_soql_fields_ok(",Id"));
    assert_false(pg_soql_fields_ok("Id,,Name"));
    assert_false(pg_soql_fields_ok("Account."));
    assert_false(pg_soql_fields_ok("Id FROM User"));
    assert_false(pg_soql_fields_ok("COUNT(Id)"));

    struct pg_buf b;
    pg_buf_init(&b, 4096);
    assert_int_equal(pg_soql_select_eq(&b, "Id FROM User --", "Contact", "Email", "x", 1),
                     PG_EINVAL);
    assert_int_equal(pg_soql_select_eq(&b, "Id", "Contact WHERE Id != null", "Email", "x", 1),
                     PG_EINVAL);
    assert_int_equal(pg_soql_select_eq(&b, "Id", "Contact", "Email = 'a' OR Email", "x", 1),
                     PG_EINVAL);
    assert_int_equal(b.len, 0);
    pg_buf_free(&b);
}

static void url_encoding(void **state)
{
    struct pg_buf b;
    pg_buf_init(&b, 4096);
    assert_int_equal(pg_url_encode(&b, "AZaz09-._~"), PG_OK);
    assert_string_equal(b.data, "AZaz09-._~");
    pg_buf_reset(&b);
    assert_int_equal(pg_url_encode(&b, "a b/c?d#e&f=g+h%'\"é"), PG_OK);
    assert_string_equal(b.data, "a%20b%2Fc%3Fd%23e%26f%3Dg%2Bh%25%27%22%C3%A9");
    pg_buf_reset(&b);
    assert_int_equal(pg_url_encode(&b, "../.."), PG_OK); /* dots stay; no '/' can appear */
    assert_string_equal(b.data, "..%2F..");
    pg_buf_free(&b);

    pg_buf_init(&b, 5);
    assert_int_equal(pg_url_encode(&b, "ab"), PG_OK);
    assert_int_equal(pg_url_encode(&b, "c/"), PG_ETOOLARGE);
    assert_string_equal(b.data, "ab");
    pg_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quotes_and_backslash),
        cmocka_unit_test(control_escapes),
        cmocka_unit_test(unicode_kept),
        cmocka_unit_test(invalid_utf8_rejected),
        cmocka_unit_test(injection_stays_in_literal),
        cmocka_unit_test(select_eq_shape),
        cmocka_unit_test(identifiers),
        cmocka_unit_test(url_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
