-- wrk script of the lookup bench (bench/lookup-run): walk the member list once, each request a
-- different member (misses on a cold cache; the cache warm-up), and count the answers.
--   wrk -tT ... -s bench/lookup-walk.lua URL -- PATHS_FILE API_KEY T MARKER_FILE
-- Thread k of T takes lines k, k+T, k+2T...; a thread that has sent its share stops once its
-- answers are in (filler requests to an unknown path keep its other connections busy meanwhile;
-- they are not counted, but they are in wrk's latency figures: at most -c of them). done() prints "WALK key=value..." (statuses, X-Cache values, the rate over
-- first request .. last answer, measured here because wrk divides by the whole -d duration).
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } lbench_ts;
  int clock_gettime(int clk, lbench_ts *ts);
]]
local function now()
  local ts = ffi.new("lbench_ts")
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local threads, nthreads = {}, 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end

local reqs, n, sent, answered = {}, 0, 0, 0
local filler = nil
local marker = nil
local headers = {}
status_counts, cache_counts = {}, {}
t_first, t_last = 0, 0

function init(args)
  if args[2] and args[2] ~= "-" then headers["X-Api-Key"] = args[2] end
  local total = 0
  for _ in io.lines(args[1]) do total = total + 1 end
  local nt = tonumber(args[3]) or 1
  marker = args[4]
  filler = wrk.format("GET", "/_lookup_walk_filler")
  -- reqs[1] is a filler: wrk calls request() once before the run on the first thread (to check
  -- the script), so the first thing request() hands out must not be a member
  reqs[1] = filler
  local i = 0
  for line in io.lines(args[1]) do
    if i % nt == tid - 1 then
      n = n + 1
      reqs[n + 1] = wrk.format("GET", line, headers)
    end
    i = i + 1
  end
end

function request()
  if t_first == 0 then t_first = now() end
  sent = sent + 1
  if sent > n + 1 then
    -- our share is sent: a request no lookup answers like (a 404 "no such endpoint", not
    -- counted), every 100 ms per connection (delay below), until the last answers are in
    return filler
  end
  return reqs[sent]
end

function delay()
  return sent > n + 1 and 100 or 0
end

function response(status, hdrs, body)
  if status == 404 and body and string.find(body, "no such endpoint", 1, true) then return end
  answered = answered + 1
  local s = tostring(status)
  status_counts[s] = (status_counts[s] or 0) + 1
  local xc = hdrs["X-Cache"] or "none"
  cache_counts[xc] = (cache_counts[xc] or 0) + 1
  t_last = now()
  if answered == n then
    if marker then -- tells bench/lookup-run this thread is done (wrk itself sleeps until -d)
      local f = io.open(marker, "a")
      f:write("done\n")
      f:close()
    end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local st, xc, first, last, total = {}, {}, math.huge, 0, 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("status_counts")) do st[k] = (st[k] or 0) + v; total = total + v end
    for k, v in pairs(t:get("cache_counts")) do xc[k] = (xc[k] or 0) + v end
    local a, b = t:get("t_first"), t:get("t_last")
    if a > 0 and a < first then first = a end
    if b > last then last = b end
  end
  local out = {"WALK answered=" .. total}
  for k, v in pairs(st) do table.insert(out, "status_" .. k .. "=" .. v) end
  for k, v in pairs(xc) do table.insert(out, "xcache_" .. k .. "=" .. v) end
  local secs = (last > first) and (last - first) or 0
  table.insert(out, string.format("secs=%.3f", secs))
  table.insert(out, string.format("rps=%.0f", secs > 0 and total / secs or 0))
  table.insert(out, string.format("p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f", latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
  print(table.concat(out, " "))
end
