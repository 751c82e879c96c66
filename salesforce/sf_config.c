#include "salesforce/sf_config.h"

#include <stdio.h>
#include <string.h>

int pg_sf_oauth_from_config(const struct pg_config *cfg,
                            const char *who,
                            int connect_timeout_ms,
                            int timeout_ms,
                            struct pg_sf_oauth **out,
                            char *why,
                            size_t whysz)
{
    *out = NULL;
    if (!cfg->sf_login_url || !cfg->sf_client_id || !cfg->sf_username || !cfg->sf_private_key) {
        snprintf(why, whysz,
                 "config: %s needs salesforce.rest.login_url, client_id, username and private_key",
                 who);
        return PG_ECONFIG;
    }
    struct pg_sf_oauth_config oc = {
        .login_url = cfg->sf_login_url,
        .audience = cfg->sf_audience,
        .client_id = cfg->sf_client_id,
        .username = cfg->sf_username,
        .private_key_pem = cfg->sf_private_key,
        .private_key_len = strlen(cfg->sf_private_key),
        .assertion_ttl_s = 180, /* Salesforce accepts assertions up to 3 minutes out */
        .token_ttl_s = cfg->sf_token_ttl_s,
        .renew_before_s = 60,
        .connect_timeout_ms = connect_timeout_ms,
        .timeout_ms = timeout_ms,
    };
    if (pg_sf_oauth_new(&oc, out) != PG_OK) {
        snprintf(why, whysz, "config: salesforce.rest.private_key is not a usable RSA private key");
        return PG_ECONFIG;
    }
    return PG_OK;
}
