-- wrk script of the lookup bench (bench/lookup-run): background misses while Salesforce is slow.
-- Every request asks for a loyalty id nobody has looked up (nor exists), so none joins another's
-- flight and none is answered from the cache: each one waits on Salesforce (up to the budget).
--   wrk ... -s bench/lookup-slowmiss.lua URL -- API_KEY [ROUND]
local id, counter, round = 0, 0, "0"
function setup(thread)
  id = id + 1
  thread:set("tid", id)
end
local headers = {}
function init(args)
  headers["X-Api-Key"] = args[1]
  round = args[2] or "0"
end
function request()
  counter = counter + 1
  return wrk.format("GET", string.format("/v1/loyalty/members?loyalty_id=LY-SLOW-%s-%d-%d", round, tid, counter), headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d p50_ms=%.2f p99_ms=%.2f err_status=%d err_timeout=%d\n",
    summary.requests, latency:percentile(50) / 1000, latency:percentile(99) / 1000, e.status, e.timeout))
end
