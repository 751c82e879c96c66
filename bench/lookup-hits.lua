-- wrk script of the lookup bench (bench/lookup-run): every request asks for a random member.
--   wrk ... -s bench/lookup-hits.lua URL -- PATHS_FILE API_KEY
-- PATHS_FILE holds one request path per line (the member mix); API_KEYS (comma-separated) go in
-- X-Api-Key, thread k using the k-th (a station each); the nginx run passes "-" and the same
-- paths: nginx serves its one file whatever the path says.
-- The requests are formatted once in init(), so wrk spends its time on I/O, not on formatting.
local reqs, n = {}, 0
local threads, id = {}, 0

function setup(thread)
  id = id + 1
  thread:set("tid", id)
  table.insert(threads, thread)
end

function init(args)
  local headers = {}
  if args[2] and args[2] ~= "-" then
    local keys = {}
    for k in string.gmatch(args[2], "[^,]+") do table.insert(keys, k) end
    headers["X-Api-Key"] = keys[((tid or 1) - 1) % #keys + 1]
  end
  for line in io.lines(args[1]) do
    n = n + 1
    reqs[n] = wrk.format("GET", line, headers)
  end
  math.randomseed(7919 * (tid or 1) + os.time())
end

function request()
  return reqs[math.random(n)]
end

-- One machine-readable line: rate over the -d duration, latency percentiles (ms), errors.
function done(summary, latency, requests)
  local e = summary.errors
  local errs = e.connect + e.read + e.write + e.status + e.timeout
  io.write(string.format(
    "RESULT requests=%d secs=%.3f rps=%.0f p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f errors=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    latency.max / 1000, errs, e.connect, e.read, e.write, e.status, e.timeout))
end
