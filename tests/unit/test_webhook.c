/* Standard Webhooks signing: the spec's published vector, raw secrets, bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "micros/webhook.h"

static char sig[100];

/* The vector published with the spec's reference libraries (standard-webhooks/standard-webhooks,
 * libraries/go/webhook_test.go, TestWebhookSign); python3 hmac/base64 agrees. */
static void spec_test_vector(void **state)
{
    const char *body = "{\"test\": 2432232314}";
    assert_int_equal(pg_webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                     "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body),
                                     sig, sizeof sig),
                     PG_OK);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

/* Without the prefix the secret's bytes are the key (vectors computed with python3:
 * base64.b64encode(hmac.new(key, b"id.ts." + body, hashlib.sha256).digest())). */
static void raw_secret(void **state)
{
    assert_int_equal(
        pg_webhook_sign("plain-secret", "id1", 1700000000, "{\"a\":1}", 7, sig, sizeof sig), PG_OK);
    assert_string_equal(sig, "v1,4hH8conMRiiWGOOwKcFnFLatFDPu2o6ZaKXoFdITfvE=");

    /* The spec secret's base64 text used raw is a different key. */
    const char *body = "{\"test\": 2432232314}";
    assert_int_equal(pg_webhook_sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                     "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body),
                                     sig, sizeof sig),
                     PG_OK);
    assert_string_equal(sig, "v1,ELhqG0Ku1gwOc1f4jyKdp3SFGFLAOdJ9bvpWLciCakI=");
}

static void empty_body(void **state)
{
    assert_int_equal(pg_webhook_sign("plain-secret", "id1", 1700000000, NULL, 0, sig, sizeof sig),
                     PG_OK);
    assert_string_equal(sig, "v1,63wBdWgmBBimVFgmsnj1llbzjPkQ5P9k1J6mikLkY+o=");
}

/* Key bytes that are not text, base64 with padding and without. */
static void binary_key_padding(void **state)
{
    assert_int_equal(pg_webhook_sign("whsec_AAEC/v8=", "m", 1, "x", 1, sig, sizeof sig), PG_OK);
    assert_string_equal(sig, "v1,CguH7/Q6O0RgcsH6DczCemKj3d8Qp6Bz1Z+HpS5kCyo=");
    assert_int_equal(pg_webhook_sign("whsec_AAEC/v8", "m", 1, "x", 1, sig, sizeof sig), PG_OK);
    assert_string_equal(sig, "v1,CguH7/Q6O0RgcsH6DczCemKj3d8Qp6Bz1Z+HpS5kCyo=");
}

static void bad_input(void **state)
{
    assert_int_equal(pg_webhook_sign("whsec_", "m", 1, "x", 1, sig, sizeof sig), PG_EINVAL);
    assert_int_equal(pg_webhook_sign("whsec_not base64!", "m", 1, "x", 1, sig, sizeof sig),
                     PG_EINVAL);
    assert_int_equal(pg_webhook_sign("whsec_QQ===", "m", 1, "x", 1, sig, sizeof sig), PG_EINVAL);
    assert_int_equal(pg_webhook_sign("", "m", 1, "x", 1, sig, sizeof sig), PG_EINVAL);
    assert_int_equal(pg_webhook_sign("k", "", 1, "x", 1, sig, sizeof sig), PG_EINVAL);
    assert_int_equal(pg_webhook_sign("k", "a\r\nX-Evil: 1", 1, "x", 1, sig, sizeof sig), PG_EINVAL);
    assert_int_equal(pg_webhook_sign("k", "m", 1, NULL, 3, sig, sizeof sig), PG_EINVAL);
    assert_int_equal(pg_webhook_sign("k", "m", 1, "x", 1, sig, 47), PG_ETOOLARGE);
    assert_int_equal(pg_webhook_sign("k", "m", 1, "x", 1, sig, PG_WEBHOOK_SIG_LEN), PG_OK);
    assert_int_equal(strlen(sig), PG_WEBHOOK_SIG_LEN - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spec_test_vector), cmocka_unit_test(raw_secret),
        cmocka_unit_test(empty_body),       cmocka_unit_test(binary_key_padding),
        cmocka_unit_test(bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
