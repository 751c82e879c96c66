/* Placeholder until the OpenAPI document lands (issue 5): answers 404 problem+json. */
#include "handlers/handlers.h"

int pg_hnd_openapi_json(struct pg_req *req)
{
    return pg_req_problem(req, 404, "the OpenAPI document is not built into this gateway yet",
                          NULL);
}

int pg_hnd_docs(struct pg_req *req)
{
    return pg_req_problem(req, 404, "the docs page is not built into this gateway yet", NULL);
}

int pg_hnd_docs_asset(struct pg_req *req)
{
    return pg_req_problem(req, 404, "no such docs asset", NULL);
}
